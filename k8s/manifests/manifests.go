// Package manifests renders the Kubernetes manifests that run the ppml KMS and
// Attestation Service: a Deployment with N replicas on PostgreSQL or a
// single-replica StatefulSet with the embedded store, the Services (ppml,
// and BigDL's bigdl-key-management-service and remote-attestation-service
// names), a PodDisruptionBudget, a NetworkPolicy and optionally a
// ServiceMonitor, with TLS from the ssl-keys Secret, the root key and admin
// token from Secrets, probes, resources and, with SGX, the Intel SGX device
// plugin resources and the Gramine image. deploy/ in the repository holds
// the same objects as a kustomize base with overlays.
package manifests

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// Names and ports.
const (
	Name             = "ppml"
	BigDLKMSService  = "bigdl-key-management-service"
	BigDLASService   = "remote-attestation-service"
	HeadlessService  = "ppml-headless"
	PortHTTPS        = 9000
	PortBigDLKMS     = 9876
	PortBigDLAS      = 9875
	RootKeySecret    = "ppml-root-key"
	RootKeyKey       = "root.key"
	AdminTokenSecret = "ppml-admin-token"
	AdminTokenKey    = "token"
	// MetricsTokenSecret holds the bearer token /metrics requires
	// (--metrics-token-file); the ServiceMonitor sends it (bearerTokenSecret).
	MetricsTokenSecret = "ppml-metrics-token"
	MetricsTokenKey    = "token"
	PostgresSecret     = "ppml-postgres"
	PostgresKey        = "password"
	TLSSecret          = "ssl-keys"
	DefaultImage       = "ghcr.io/ppml-project/ppml:latest"
	DefaultSGXImage    = "ghcr.io/ppml-project/ppml-gramine:latest"
	// PostgresCAKey (in Secret ppml-postgres, next to the password) is the
	// CA that signed the PostgreSQL server's certificate: DefaultDB verifies
	// the server (sslmode=verify-full), not just encrypts (require).
	PostgresCAKey   = "ca.crt"
	PostgresCADir   = "/etc/ppml/postgres"
	DefaultDB       = "postgres://ppml@postgres:5432/ppml?sslmode=verify-full&sslrootcert=" + PostgresCADir + "/" + PostgresCAKey
	DefaultReplicas = 3
	// DefaultEPC is the sgx.intel.com/epc request of the SGX variant: the
	// enclave size deploy/gramine builds with (ENCLAVE_SIZE=2G). Without
	// EDMM the whole enclave is committed when it is created.
	DefaultEPC         = "2Gi"
	DefaultStorageSize = "1Gi"
	DataDir            = "/var/lib/ppml"
	uid                = 65532 // "nonroot" of distroless
)

// Options select the variant.
type Options struct {
	// Namespace of every object; empty leaves it unset (kubectl -n or
	// kustomize decides).
	Namespace string
	// Image of the ppml container; DefaultImage, or DefaultSGXImage with SGX.
	Image string
	// Postgres selects a Deployment of Replicas pods on PostgreSQL (DB, the
	// password from Secret ppml-postgres key password as PGPASSWORD);
	// otherwise a single-replica StatefulSet with the embedded store on a
	// PersistentVolumeClaim of StorageSize.
	Postgres    bool
	Replicas    int32
	DB          string
	StorageSize string
	// SGX runs ppml serve inside Gramine (deploy/gramine): the image's
	// manifest fixes the command line (root key provider shamir), and the
	// pod requests sgx.intel.com/epc (EPC), enclave and provision.
	SGX bool
	EPC string
	// PCCSURL is passed as --pccs-url (without SGX; the Gramine manifest
	// carries its own).
	PCCSURL string
	// DBPeer and PCCSPeer are where the NetworkPolicy lets the pods
	// connect besides DNS: a CIDR (10.0.0.5/32) or a label selector of
	// pods in the namespace (app.kubernetes.io/name=postgresql). Defaults:
	// DefaultDBPeer with --postgres, DefaultPCCSPeer.
	DBPeer   string
	PCCSPeer string
	// ServiceMonitor adds a Prometheus Operator ServiceMonitor.
	ServiceMonitor bool
}

// NetworkPolicy defaults: the PostgreSQL and PCCS pods of common charts.
const (
	DefaultDBPeer   = "app.kubernetes.io/name=postgresql"
	DefaultPCCSPeer = "app.kubernetes.io/name=pccs"
	PortPostgres    = 5432
	PortPCCS        = 8081 // Intel's PCCS default
)

func (o Options) withDefaults() (Options, error) {
	if o.Image == "" {
		o.Image = DefaultImage
		if o.SGX {
			o.Image = DefaultSGXImage
		}
	}
	if err := checkImageRef(o.Image); err != nil {
		return o, err
	}
	if o.SGX && !o.Postgres {
		return o, fmt.Errorf("--sgx needs --postgres: the embedded SQLite store uses WAL, whose shared-memory file Gramine-SGX refuses to map, and its data directory would be plaintext and unauthenticated on the host")
	}
	if o.SGX && o.DB != "" {
		return o, fmt.Errorf("--db with --sgx: the Gramine manifest fixes the command line, so the URL would be ignored; build the image with --build-arg PPML_DB=URL instead")
	}
	if o.Postgres {
		if o.Replicas == 0 {
			o.Replicas = DefaultReplicas
		}
		if o.DB == "" && !o.SGX {
			o.DB = DefaultDB
		}
		if !o.SGX && !strings.HasPrefix(o.DB, "postgres://") && !strings.HasPrefix(o.DB, "postgresql://") {
			return o, fmt.Errorf("--db %q: want a postgres:// URL (the password comes from Secret %s, not the URL)", o.DB, PostgresSecret)
		}
		if !o.SGX && strings.Contains(strings.SplitN(strings.SplitN(o.DB, "://", 2)[1], "@", 2)[0], ":") && strings.Contains(o.DB, "@") {
			return o, fmt.Errorf("--db: the URL holds a password; put it in Secret %s key %s instead (it becomes PGPASSWORD)", PostgresSecret, PostgresKey)
		}
	} else {
		if o.Replicas > 1 {
			return o, fmt.Errorf("--replicas %d: the embedded store runs one replica; use --postgres for more", o.Replicas)
		}
		if o.DB != "" {
			return o, fmt.Errorf("--db needs --postgres")
		}
		o.Replicas = 1
	}
	if o.Replicas < 1 {
		return o, fmt.Errorf("--replicas %d: want at least 1", o.Replicas)
	}
	if o.StorageSize == "" {
		o.StorageSize = DefaultStorageSize
	}
	if _, err := resource.ParseQuantity(o.StorageSize); err != nil {
		return o, fmt.Errorf("--storage %q: %v", o.StorageSize, err)
	}
	if o.SGX && o.PCCSURL != "" {
		return o, fmt.Errorf("--pccs-url with --sgx: the Gramine manifest fixes the command line; build the image with --build-arg PPML_PCCS_URL=URL instead")
	}
	if o.EPC == "" {
		o.EPC = DefaultEPC
	}
	if _, err := resource.ParseQuantity(o.EPC); err != nil {
		return o, fmt.Errorf("--epc %q: %v", o.EPC, err)
	}
	if o.Postgres && o.DBPeer == "" {
		o.DBPeer = DefaultDBPeer
	}
	if !o.Postgres && o.DBPeer != "" {
		return o, fmt.Errorf("--egress-db needs --postgres (the embedded store has no database to reach)")
	}
	if o.PCCSPeer == "" {
		o.PCCSPeer = DefaultPCCSPeer
	}
	for flag, v := range map[string]string{"--egress-db": o.DBPeer, "--egress-pccs": o.PCCSPeer} {
		if v == "" {
			continue
		}
		if _, err := peer(v); err != nil {
			return o, fmt.Errorf("%s %q: %v", flag, v, err)
		}
	}
	return o, nil
}

// checkImageRef validates an image reference; one pinned by digest
// (REF@sha256:...) must carry a well-formed SHA-256 digest.
func checkImageRef(ref string) error {
	if strings.Contains(ref, "@") {
		if _, err := name.NewDigest(ref); err != nil {
			return fmt.Errorf("--image %q: %v; want REF@sha256:<64 hex digits> (ppml k8s image build prints the digest)", ref, err)
		}
		return nil
	}
	if _, err := name.ParseReference(ref); err != nil {
		return fmt.Errorf("--image %q: %v", ref, err)
	}
	return nil
}

// Labels of every object; Selector selects the pods.
var (
	Labels   = map[string]string{"app.kubernetes.io/name": Name, "app.kubernetes.io/component": "kms", "app.kubernetes.io/managed-by": "ppml"}
	Selector = map[string]string{"app.kubernetes.io/name": Name}
)

func meta(name, ns string) metav1.ObjectMeta {
	l := map[string]string{}
	for k, v := range Labels {
		l[k] = v
	}
	return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: l}
}

func sel() map[string]string {
	return map[string]string{"app.kubernetes.io/name": Name}
}

// Objects returns the objects in apply order, split into the part common
// to every variant (the kustomize base) and the workload.
func Objects(opts Options) (base, workload []any, err error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, nil, err
	}
	ns := o.Namespace
	no := false
	base = append(base, &corev1.ServiceAccount{
		TypeMeta:                     metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta:                   meta(Name, ns),
		AutomountServiceAccountToken: &no,
	})
	svc := func(name string, ports []corev1.ServicePort, affinity bool) *corev1.Service {
		s := &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: meta(name, ns),
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: sel(), Ports: ports},
		}
		if affinity {
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		}
		return s
	}
	port := func(name string, p int32) corev1.ServicePort {
		return corev1.ServicePort{Name: name, Port: p, TargetPort: intstr.FromString(name), Protocol: corev1.ProtocolTCP}
	}
	base = append(base,
		svc(Name, []corev1.ServicePort{port("https", PortHTTPS), port("bigdl-kms", PortBigDLKMS), port("bigdl-as", PortBigDLAS)}, false),
		svc(BigDLKMSService, []corev1.ServicePort{{Name: "bigdl-kms-port", Port: PortBigDLKMS, TargetPort: intstr.FromString("bigdl-kms"), Protocol: corev1.ProtocolTCP}}, true),
		svc(BigDLASService, []corev1.ServicePort{{Name: "bigdl-as-port", Port: PortBigDLAS, TargetPort: intstr.FromString("bigdl-as"), Protocol: corev1.ProtocolTCP}}, false),
	)
	// A headless Service: one DNS record per pod, published before the pod
	// is ready (a sealed replica still answers /metrics and unseal). It
	// governs the StatefulSet (ppml-0.ppml-headless) and is how a plain
	// Prometheus finds every pod (dns_sd_configs).
	headless := svc(HeadlessService, []corev1.ServicePort{port("https", PortHTTPS)}, false)
	headless.Spec.ClusterIP = corev1.ClusterIPNone
	headless.Spec.PublishNotReadyAddresses = true
	base = append(base, headless)
	one := intstr.FromInt32(1)
	base = append(base, &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: meta(Name, ns),
		Spec:       policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one, Selector: &metav1.LabelSelector{MatchLabels: sel()}},
	})
	base = append(base, networkPolicy(o))

	annotations, pod := podSpec(o)
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: meta("", "").Labels, Annotations: annotations}, Spec: pod}
	replicas := o.Replicas
	if o.Postgres {
		workload = append(workload, &appsv1.Deployment{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: meta(Name, ns),
			Spec: appsv1.DeploymentSpec{
				Replicas: &replicas,
				Selector: &metav1.LabelSelector{MatchLabels: sel()},
				Template: tmpl,
			},
		})
	} else {
		workload = append(workload, &appsv1.StatefulSet{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
			ObjectMeta: meta(Name, ns),
			Spec: appsv1.StatefulSetSpec{
				Replicas:    &replicas,
				ServiceName: HeadlessService,
				Selector:    &metav1.LabelSelector{MatchLabels: sel()},
				Template:    tmpl,
				VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
					ObjectMeta: metav1.ObjectMeta{Name: "data"},
					Spec: corev1.PersistentVolumeClaimSpec{
						AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
						Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(o.StorageSize)}},
					},
				}},
			},
		})
	}
	if o.ServiceMonitor {
		workload = append(workload, serviceMonitor(ns))
	}
	return base, workload, nil
}

// SGX pod details.
const (
	AESMSocketDir           = "/var/run/aesmd"
	QuoteProviderAnnotation = "sgx.intel.com/quote-provider"
	SGXAuditDir             = "/var/log/ppml"
)

func podSpec(o Options) (map[string]string, corev1.PodSpec) {
	yes, no := true, false
	user := int64(uid)
	mounts := []corev1.VolumeMount{
		{Name: "data", MountPath: DataDir},
		{Name: "tmp", MountPath: "/tmp"},
		{Name: "tls", MountPath: "/etc/ppml/tls", ReadOnly: true},
		{Name: "root-key", MountPath: "/etc/ppml/root-key", ReadOnly: true},
		{Name: "admin-token", MountPath: "/etc/ppml/admin", ReadOnly: true},
		{Name: "metrics-token", MountPath: "/etc/ppml/metrics", ReadOnly: true},
	}
	mode := int32(0o440)
	secretVol := func(name, secret string, items ...corev1.KeyToPath) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret, Items: items, DefaultMode: &mode}}}
	}
	vols := []corev1.Volume{
		{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		secretVol("tls", TLSSecret, corev1.KeyToPath{Key: "server.crt", Path: "server.crt"}, corev1.KeyToPath{Key: "server.key", Path: "server.key"}),
		secretVol("root-key", RootKeySecret, corev1.KeyToPath{Key: RootKeyKey, Path: RootKeyKey}),
		secretVol("admin-token", AdminTokenSecret, corev1.KeyToPath{Key: AdminTokenKey, Path: AdminTokenKey}),
		secretVol("metrics-token", MetricsTokenSecret, corev1.KeyToPath{Key: MetricsTokenKey, Path: MetricsTokenKey}),
	}
	if o.Postgres {
		vols = append([]corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}, vols...)
		if !o.SGX { // the Gramine image carries the PostgreSQL CA as a measured file
			vols = append(vols, secretVol("postgres-ca", PostgresSecret, corev1.KeyToPath{Key: PostgresCAKey, Path: PostgresCAKey}))
			mounts = append(mounts, corev1.VolumeMount{Name: "postgres-ca", MountPath: PostgresCADir, ReadOnly: true})
		}
	}
	args := []string{"serve",
		"--addr=0.0.0.0:" + strconv.Itoa(PortHTTPS),
		"--bigdl-kms-addr=0.0.0.0:" + strconv.Itoa(PortBigDLKMS),
		"--bigdl-as-addr=0.0.0.0:" + strconv.Itoa(PortBigDLAS),
		"--data-dir=" + DataDir,
		"--tls-cert=/etc/ppml/tls/server.crt",
		"--tls-key=/etc/ppml/tls/server.key",
		"--root-key-provider=file",
		"--root-key-file=/etc/ppml/root-key/" + RootKeyKey,
		"--admin-token-file=/etc/ppml/admin/" + AdminTokenKey,
		"--metrics-token-file=/etc/ppml/metrics/" + MetricsTokenKey,
		"--log-format=json",
	}
	if o.Postgres {
		args = append(args, "--db="+o.DB)
	}
	if o.PCCSURL != "" {
		args = append(args, "--pccs-url="+o.PCCSURL)
	}
	var env []corev1.EnvVar
	if o.Postgres {
		env = append(env, corev1.EnvVar{Name: "PGPASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: PostgresSecret}, Key: PostgresKey}}})
	}
	res := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
	}
	c := corev1.Container{
		Name:         Name,
		Image:        o.Image,
		Args:         args,
		Env:          env,
		Ports:        []corev1.ContainerPort{{Name: "https", ContainerPort: PortHTTPS, Protocol: corev1.ProtocolTCP}, {Name: "bigdl-kms", ContainerPort: PortBigDLKMS, Protocol: corev1.ProtocolTCP}, {Name: "bigdl-as", ContainerPort: PortBigDLAS, Protocol: corev1.ProtocolTCP}},
		Resources:    res,
		VolumeMounts: mounts,
		// The startup probe holds the other two off while the process (or
		// the enclave: up to 5 minutes) starts.
		StartupProbe:    probe("/healthz", 5, 24),
		LivenessProbe:   probe("/healthz", 10, 6),
		ReadinessProbe:  probe("/readyz", 5, 3),
		SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: &yes, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
	}
	var annotations map[string]string
	if o.SGX {
		// Gramine fixes the command line in its manifest (trusted argv):
		// root key provider shamir, --db and --pccs-url baked in at build
		// time, the TLS key generated in the enclave, only the admin
		// token's hash measured. Nothing secret comes from the host, so no
		// Secret but the PostgreSQL password is mounted.
		c.Command = []string{"gramine-sgx", "ppml"}
		c.Args = nil
		epc := resource.MustParse(o.EPC)
		oneQ := resource.MustParse("1")
		for _, l := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
			l["sgx.intel.com/epc"] = epc
			l["sgx.intel.com/enclave"] = oneQ
			l["sgx.intel.com/provision"] = oneQ
		}
		for _, n := range []string{"root-key", "tls", "admin-token", "metrics-token", "data"} {
			c.VolumeMounts = removeNamed(c.VolumeMounts, n, mountName)
			vols = removeNamed(vols, n, volumeName)
		}
		// DCAP quotes (sgx.remote_attestation = "dcap") go through the
		// node's AESM service: its socket, and the annotation Intel's
		// admission webhook and device plugin read.
		// (First: the order kustomize's strategic merge gives the SGX patch.)
		vols = append([]corev1.Volume{
			{Name: "aesmd-socket", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: AESMSocketDir, Type: ptr(corev1.HostPathDirectory)}}},
			// The audit log is the one file the enclave writes to the host.
			{Name: "audit", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		}, vols...)
		c.VolumeMounts = append([]corev1.VolumeMount{{Name: "aesmd-socket", MountPath: AESMSocketDir}, {Name: "audit", MountPath: SGXAuditDir}}, c.VolumeMounts...)
		annotations = map[string]string{QuoteProviderAnnotation: "aesmd"}
		// Enclave creation commits the whole enclave first.
		c.StartupProbe = probe("/healthz", 5, 60)
	}
	return annotations, corev1.PodSpec{
		ServiceAccountName:            Name,
		AutomountServiceAccountToken:  &no,
		TerminationGracePeriodSeconds: ptr(int64(30)),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot: &yes, RunAsUser: &user, RunAsGroup: &user, FSGroup: &user,
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{c},
		Volumes:    vols,
	}
}

func ptr[T any](v T) *T { return &v }

// removeNamed returns a copy of items without those whose nameOf is name.
func removeNamed[T any](items []T, name string, nameOf func(T) string) []T {
	var out []T
	for _, it := range items {
		if nameOf(it) != name {
			out = append(out, it)
		}
	}
	return out
}

func mountName(m corev1.VolumeMount) string { return m.Name }

func volumeName(v corev1.Volume) string { return v.Name }

func probe(path string, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("https"), Scheme: corev1.URISchemeHTTPS}},
		PeriodSeconds:    period,
		TimeoutSeconds:   3,
		FailureThreshold: failures,
	}
}

// peer parses a NetworkPolicy destination: a CIDR or a pod label selector
// ("k=v,k2=v2") in the namespace.
func peer(v string) (networkingv1.NetworkPolicyPeer, error) {
	if _, _, err := net.ParseCIDR(v); err == nil {
		return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: v}}, nil
	}
	sel, err := metav1.ParseToLabelSelector(v)
	if err != nil || len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
		return networkingv1.NetworkPolicyPeer{}, fmt.Errorf("want a CIDR (10.0.0.5/32) or a pod label selector (app.kubernetes.io/name=postgresql)")
	}
	return networkingv1.NetworkPolicyPeer{PodSelector: sel}, nil
}

func networkPolicy(o Options) *networkingv1.NetworkPolicy {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	np := func(proto *corev1.Protocol, p int32) networkingv1.NetworkPolicyPort {
		v := intstr.FromInt32(p)
		return networkingv1.NetworkPolicyPort{Protocol: proto, Port: &v}
	}
	pccsPort := int32(PortPCCS)
	if u, err := url.Parse(o.PCCSURL); err == nil && u.Port() != "" {
		if p, err := strconv.Atoi(u.Port()); err == nil {
			pccsPort = int32(p)
		}
	}
	// Egress: DNS to the cluster DNS pods, the database and the PCCS,
	// each only on its port; nothing else.
	dns := networkingv1.NetworkPolicyPeer{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "kube-system"}},
		PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-dns"}},
	}
	egress := []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{dns}, Ports: []networkingv1.NetworkPolicyPort{np(&udp, 53), np(&tcp, 53)}}}
	if o.Postgres {
		p, _ := peer(o.DBPeer)
		egress = append(egress, networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{p}, Ports: []networkingv1.NetworkPolicyPort{np(&tcp, PortPostgres)}})
	}
	p, _ := peer(o.PCCSPeer)
	egress = append(egress, networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{p}, Ports: []networkingv1.NetworkPolicyPort{np(&tcp, pccsPort)}})
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: meta(Name, o.Namespace),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: sel()},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			// Clients anywhere may reach the API ports; nothing else.
			Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{np(&tcp, PortHTTPS), np(&tcp, PortBigDLKMS), np(&tcp, PortBigDLAS)}}},
			Egress:  egress,
		},
	}
}

func serviceMonitor(ns string) map[string]any {
	m := map[string]any{"name": Name, "labels": Labels}
	if ns != "" {
		m["namespace"] = ns
	}
	return map[string]any{
		"apiVersion": "monitoring.coreos.com/v1",
		"kind":       "ServiceMonitor",
		"metadata":   m,
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/name": Name, "app.kubernetes.io/component": "kms"}},
			"endpoints": []any{map[string]any{
				"port": "https", "path": "/metrics", "scheme": "https", "interval": "30s",
				// Verify the KMS certificate (ssl-keys server.crt; generate it with --dns ppml).
				"tlsConfig": map[string]any{"serverName": Name, "ca": map[string]any{"secret": map[string]any{"name": TLSSecret, "key": "server.crt"}}},
				// The pods require it (--metrics-token-file).
				"bearerTokenSecret": map[string]any{"name": MetricsTokenSecret, "key": MetricsTokenKey},
			}},
		},
	}
}

// Render returns the objects as one YAML stream for kubectl apply -f.
func Render(opts Options) ([]byte, error) {
	base, work, err := Objects(opts)
	if err != nil {
		return nil, err
	}
	return Marshal(append(base, work...)...)
}

// Marshal renders objects as a YAML stream without empty status and
// creationTimestamp fields.
func Marshal(objs ...any) ([]byte, error) {
	var buf bytes.Buffer
	for i, obj := range objs {
		b, err := yaml.Marshal(obj)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		delete(m, "status")
		clean(m)
		if b, err = yaml.Marshal(m); err != nil {
			return nil, err
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(b)
	}
	return buf.Bytes(), nil
}

// clean drops null values and empty status/resources maps.
func clean(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			clean(x)
			if x == nil {
				delete(t, k)
				continue
			}
			if mm, ok := x.(map[string]any); ok && len(mm) == 0 && (k == "status" || k == "resources" || k == "metadata" || k == "strategy" || k == "updateStrategy") {
				delete(t, k)
			}
		}
	case []any:
		for _, x := range t {
			clean(x)
		}
	}
}

// Secrets returns fresh ppml-root-key (a base64 AES-256 root key, as
// --root-key-file reads it), ppml-admin-token and ppml-metrics-token
// Secrets. Create them once
// (kubectl create, not apply): a new root key cannot unwrap the keys stored
// under the old one.
func Secrets(namespace string, rnd io.Reader) ([]*corev1.Secret, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	root, tok, mtok := make([]byte, 32), make([]byte, 32), make([]byte, 32)
	for _, b := range [][]byte{root, tok, mtok} {
		if _, err := io.ReadFull(rnd, b); err != nil {
			return nil, err
		}
	}
	mk := func(name, key string, v []byte) *corev1.Secret {
		return &corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: meta(name, namespace),
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{key: v},
		}
	}
	return []*corev1.Secret{
		mk(RootKeySecret, RootKeyKey, []byte(base64.StdEncoding.EncodeToString(root))),
		mk(AdminTokenSecret, AdminTokenKey, []byte(base64.RawURLEncoding.EncodeToString(tok))),
		mk(MetricsTokenSecret, MetricsTokenKey, []byte(base64.RawURLEncoding.EncodeToString(mtok))),
	}, nil
}
