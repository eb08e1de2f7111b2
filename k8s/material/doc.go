// Package material generates the key and password material that BigDL PPML
// images expect in Kubernetes Secrets, natively (no openssl, no keytool, no
// prompts), and writes it as files plus Secret manifests:
//
//   - ssl-keys (keys.yaml): server.csr, server.crt (self-signed, CN and
//     DNS/IP SANs), keystore.pkcs12 and keystore.jks, both protected with the
//     password (JKS: store and key password); with
//     KeysOptions.IncludePlainKey also server.key (RSA-3072, PKCS#8 PEM,
//     unencrypted) and server.pem (key followed by certificate).
//   - ssl-password (password.yaml): key.txt (RSA-2048 private key, PEM) and
//     output.bin (RSA PKCS#1 v1.5 encryption of "<password>\n" with that key),
//     which images decode with
//     `openssl rsautl -inkey key.txt -decrypt < output.bin`.
//   - spark-secret (spark-secret.yaml): key "secret" = the password, consumed
//     as SPARK_AUTHENTICATE_SECRET.
//
// One password is shared by all three, as the images require.
//
// Security note: ssl-password stores the decryption key next to the
// ciphertext, so it is obfuscation, not protection; images depend on that
// layout. The protection of all three Secrets comes from Kubernetes RBAC
// (who may read Secrets or create pods in the namespace) and from encryption
// of Secrets at rest in etcd. server.key and server.pem are unencrypted
// copies of the TLS key that neither Spark nor the BigDL KMS image reads
// (they use keystore.jks and keystore.pkcs12); they are written only on
// request (KeysOptions.IncludePlainKey), for ppml serve's own pods and
// older tools.
package material
