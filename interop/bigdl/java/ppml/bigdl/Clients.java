package ppml.bigdl;

import com.intel.analytics.bigdl.ppml.attestation.service.AttestationService;
import com.intel.analytics.bigdl.ppml.attestation.service.BigDLAttestationService;
import com.intel.analytics.bigdl.ppml.attestation.service.EHSMAttestationService;
import com.intel.analytics.bigdl.ppml.kms.BigDLKeyManagementService;
import com.intel.analytics.bigdl.ppml.crypto.AES_CBC_PKCS5PADDING$;
import com.intel.analytics.bigdl.ppml.crypto.BigDLAESCBCEncrypt;
import com.intel.analytics.bigdl.ppml.crypto.BigDLEncrypt;
import com.intel.analytics.bigdl.ppml.crypto.DECRYPT$;
import com.intel.analytics.bigdl.ppml.crypto.ENCRYPT$;
import com.intel.analytics.bigdl.ppml.kms.EHSMKeyManagementService;
import com.intel.analytics.bigdl.ppml.kms.common.KeyLoader;
import org.apache.spark.sql.SparkSession;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Base64;

/**
 * Drives BigDL PPML's own client classes (compiled from the upstream source by
 * scripts/engines.sh) the way BigDL's jobs and AttestationCLI call them, for
 * the Go tests in interop/bigdl_test.go. Secrets come from files named on the
 * command line, never from the command line itself; key plaintexts go to
 * 0600 files, never to stdout.
 *
 * <pre>
 * ehsm-kms HOST PORT APPID APIKEY_FILE DIR
 *     retrievePrimaryKey(DIR/primaryKey), retrieveDataKey(DIR/primaryKey, DIR/dataKey),
 *     retrieveDataKeyPlainText(DIR/primaryKey, DIR/dataKey) -> DIR/dataKey.plaintext
 * ehsm-kms-plaintext HOST PORT APPID APIKEY_FILE PRIMARY_KEY_FILE CIPHERTEXT_FILE OUT
 *     retrieveDataKeyPlainText(PRIMARY_KEY_FILE, "", encryptedDataKeyString) -> OUT
 * bigdl-kms HOST PORT USER TOKEN_FILE PRIMARY_KEY DATA_KEY OUT create|read
 *     create: retrievePrimaryKey, retrieveDataKey; both: retrieveDataKeyPlainText -> OUT
 * ehsm-as|bigdl-as HOST PORT APPID APIKEY_FILE QUOTE_FILE [POLICY_ID]
 *     attestWithServer(base64(quote)[, policyID]); prints "verdict=true|false" and the answer
 * crypto-encrypt|crypto-decrypt IN_DIR OUT_DIR KEYS, KEYS one of
 *     ehsm HOST PORT APPID APIKEY_FILE PRIMARY_KEY_FILE   (KeyLoader over EHSMKeyManagementService)
 *     plaintext PRIMARY_KEY_FILE                          (KeyLoader's plain-text primary key:
 *                                                         the first line, base64 AES)
 *   crypto-encrypt: as EncryptedDataFrameWriter, one data key for the dataset from KeyLoader,
 *     BigDLEncrypt (AES/CBC/PKCS5Padding) of each file IN_DIR/F to OUT_DIR/F.cbc, then
 *     KeyLoader.writeEncryptedDataKey(OUT_DIR) (OUT_DIR/.meta)
 *   crypto-decrypt: KeyLoader.retrieveDataKeyPlainText(IN_DIR) (IN_DIR/.meta), BigDLEncrypt
 *     decryption of each IN_DIR/F.cbc to OUT_DIR/F, and BigDLEncrypt's encryption of
 *     OUT_DIR/F under IN_DIR/F.cbc's encryptedDataKey and IV to OUT_DIR/F.cbc
 * aescbc-encrypt IN_DIR OUT_DIR PRIMARY_KEY_FILE
 *     BigDLAESCBCEncrypt (spark.bigdl.encryter.type nativeaescbc: the primary key's plaintext
 *     is the data key, no tag, no .meta) of each IN_DIR/F to OUT_DIR/F.cbc
 * </pre>
 * The crypto modes start a local SparkSession: KeyLoader reads its Hadoop configuration.
 */
public final class Clients {
    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "ehsm-kms": {
                EHSMKeyManagementService kms = new EHSMKeyManagementService(args[1], args[2], args[3], secret(args[4]));
                String dir = args[5];
                kms.retrievePrimaryKey(dir + "/primaryKey", null);
                kms.retrieveDataKey(dir + "/primaryKey", dir + "/dataKey", null);
                String plain = kms.retrieveDataKeyPlainText(dir + "/primaryKey", dir + "/dataKey", null, "");
                writePrivate(dir + "/dataKey.plaintext", plain);
                break;
            }
            case "ehsm-kms-plaintext": {
                EHSMKeyManagementService kms = new EHSMKeyManagementService(args[1], args[2], args[3], secret(args[4]));
                String plain = kms.retrieveDataKeyPlainText(args[5], "", null, secret(args[6]));
                writePrivate(args[7], plain);
                break;
            }
            case "bigdl-kms": {
                BigDLKeyManagementService kms = new BigDLKeyManagementService(args[1], args[2], args[3], secret(args[4]));
                String pk = args[5], dk = args[6];
                if (args[8].equals("create")) {
                    kms.retrievePrimaryKey(pk, null);
                    String name = kms.retrieveDataKey(pk, dk, null).get();
                    if (!name.equals(dk)) {
                        throw new IllegalStateException("retrieveDataKey named the key " + name + ", not " + dk);
                    }
                }
                writePrivate(args[7], kms.retrieveDataKeyPlainText(pk, dk, null, ""));
                break;
            }
            case "ehsm-as":
            case "bigdl-as": {
                AttestationService as = args[0].equals("ehsm-as")
                        ? new EHSMAttestationService(args[1], args[2], args[3], secret(args[4]))
                        : new BigDLAttestationService(args[1], args[2], args[3], secret(args[4]), true);
                // As AttestationCLI: the quote file's bytes, base64.
                String quote = Base64.getEncoder().encodeToString(Files.readAllBytes(Paths.get(args[5])));
                scala.Tuple2<Object, String> r = args.length > 6
                        ? as.attestWithServer(quote, args[6])
                        : as.attestWithServer(quote);
                System.out.println("verdict=" + r._1());
                System.out.println("answer=" + r._2());
                break;
            }
            case "crypto-encrypt":
            case "crypto-decrypt": {
                SparkSession.builder().master("local[1]").appName("ppml-bigdl-crypto")
                        .config("spark.ui.enabled", "false").getOrCreate();
                KeyLoader keys = args[3].equals("ehsm")
                        ? new KeyLoader(true, args[8], new EHSMKeyManagementService(args[4], args[5], args[6], secret(args[7])), "", null)
                        : new KeyLoader(false, "", null, secret(args[4]), null);
                File in = new File(args[1]);
                String out = args[2];
                if (args[0].equals("crypto-encrypt")) {
                    scala.Tuple2<String, String> dataKey = keys.generateDataKeyPlainText();
                    for (File f : files(in, false)) {
                        BigDLEncrypt enc = new BigDLEncrypt();
                        enc.init(AES_CBC_PKCS5PADDING$.MODULE$, ENCRYPT$.MODULE$, dataKey._1(), dataKey._2());
                        enc.doFinal(f.getPath(), out + "/" + f.getName() + ".cbc");
                    }
                    keys.writeEncryptedDataKey(out);
                } else {
                    String dataKey = keys.retrieveDataKeyPlainText(in.getPath());
                    for (File f : files(in, true)) {
                        BigDLEncrypt dec = new BigDLEncrypt();
                        dec.init(AES_CBC_PKCS5PADDING$.MODULE$, DECRYPT$.MODULE$, dataKey);
                        String name = f.getName();
                        String plain = out + "/" + name.substring(0, name.length() - ".cbc".length());
                        dec.doFinal(f.getPath(), plain);
                        // BigDL's reader ignores the tag (its check is inverted), so
                        // BigDL's writer re-encrypts what it read under the file's
                        // encryptedDataKey and IV: the same bytes, tag included, if
                        // the file is as BigDL would have written it.
                        scala.Tuple2<String, byte[]> header;
                        try (java.io.InputStream h = new java.io.FileInputStream(f)) {
                            header = new BigDLEncrypt().getHeader(h);
                        }
                        BigDLEncrypt enc = new BigDLEncrypt();
                        enc.init(AES_CBC_PKCS5PADDING$.MODULE$, ENCRYPT$.MODULE$, dataKey, header._1());
                        enc.verifyHeader(header._2());
                        enc.doFinal(plain, out + "/" + name);
                    }
                }
                break;
            }
            case "aescbc-encrypt": {
                for (File f : files(new File(args[1]), false)) {
                    BigDLAESCBCEncrypt enc = new BigDLAESCBCEncrypt();
                    enc.init(AES_CBC_PKCS5PADDING$.MODULE$, ENCRYPT$.MODULE$, secret(args[3]));
                    enc.doFinal(f.getPath(), args[2] + "/" + f.getName() + ".cbc");
                }
                break;
            }
            default:
                throw new IllegalArgumentException("unknown mode " + args[0]);
        }
    }

    /** The data files of a directory: not hidden (.meta, Hadoop's .crc files), *.cbc or not. */
    private static java.util.List<File> files(File dir, boolean cbc) {
        java.util.List<File> out = new java.util.ArrayList<>();
        for (File f : dir.listFiles()) {
            if (f.isFile() && !f.getName().startsWith(".") && f.getName().endsWith(".cbc") == cbc) {
                out.add(f);
            }
        }
        if (out.isEmpty()) {
            throw new IllegalArgumentException("no " + (cbc ? "" : "non-") + ".cbc file in " + dir);
        }
        return out;
    }

    /** The first line of a file (an API key, a token, a ciphertext). */
    private static String secret(String file) throws Exception {
        return new String(Files.readAllBytes(Paths.get(file)), StandardCharsets.UTF_8).split("\n")[0].trim();
    }

    private static void writePrivate(String file, String content) throws Exception {
        Path p = Paths.get(file);
        Files.createFile(p, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        Files.write(p, content.getBytes(StandardCharsets.UTF_8));
    }
}
