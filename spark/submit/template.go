package submit

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// SGX device plugin resources (contract §4.4).
const (
	ResourceEPC       corev1.ResourceName = "sgx.intel.com/epc"
	ResourceEnclave   corev1.ResourceName = "sgx.intel.com/enclave"
	ResourceProvision corev1.ResourceName = "sgx.intel.com/provision"
)

// renderTemplate extends base (an operator template, may be empty) and
// returns YAML.
func renderTemplate(o Options, driver bool, base []byte) ([]byte, error) {
	pod := &corev1.Pod{}
	if len(base) > 0 {
		if err := yaml.UnmarshalStrict(base, pod); err != nil {
			return nil, fmt.Errorf("not a Pod: %w", err)
		}
		if pod.Kind != "" && pod.Kind != "Pod" {
			return nil, fmt.Errorf("kind %s: want a Pod", pod.Kind)
		}
	}
	pod.APIVersion, pod.Kind = "v1", "Pod"
	extend(pod, o, driver)
	return marshalPod(pod)
}

func marshalPod(pod *corev1.Pod) ([]byte, error) {
	b, err := yaml.Marshal(pod)
	if err != nil {
		return nil, err
	}
	// Drop the empty fields client types always carry.
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	prune(m)
	return yaml.Marshal(m)
}

func prune(m map[string]any) {
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			prune(x)
			if len(x) == 0 {
				delete(m, k)
			}
		case []any:
			for _, e := range x {
				if em, ok := e.(map[string]any); ok {
					prune(em)
				}
			}
		}
	}
}

// extend adds what the contract requires to pod, keeping what is there
// (volumes, mounts and variables with the same names win).
func extend(pod *corev1.Pod, o Options, driver bool) {
	name, role := ExecutorContainer, "executor"
	if driver {
		name, role = DriverContainer, "driver"
	}
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	if _, ok := pod.Labels["app.kubernetes.io/managed-by"]; !ok {
		pod.Labels["app.kubernetes.io/managed-by"] = "ppml"
	}
	if _, ok := pod.Labels["ppml.io/spark-role"]; !ok {
		pod.Labels["ppml.io/spark-role"] = role
	}
	var c *corev1.Container
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			c = &pod.Spec.Containers[i]
		}
	}
	if c == nil {
		if len(pod.Spec.Containers) > 0 {
			// Spark takes the first container when the named one is missing;
			// name it so podTemplateContainerName finds it.
			c = &pod.Spec.Containers[0]
			c.Name = name
		} else {
			pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: name})
			c = &pod.Spec.Containers[0]
		}
	}
	if c.Image == "" {
		// Spark overrides it with spark.kubernetes.container.image; a
		// template must still be a valid Pod.
		c.Image = o.Image
		if c.Image == "" {
			c.Image = "intelanalytics/bigdl-ppml-trusted-bigdata-gramine-reference:latest"
		}
	}

	addVolume := func(v corev1.Volume, m corev1.VolumeMount) {
		if !hasVolume(pod, v.Name) {
			pod.Spec.Volumes = append(pod.Spec.Volumes, v)
		}
		for _, x := range c.VolumeMounts {
			if x.Name == m.Name || x.MountPath == m.MountPath {
				return
			}
		}
		c.VolumeMounts = append(c.VolumeMounts, m)
	}
	if o.SGXEnabled {
		socket := corev1.HostPathSocket
		addVolume(corev1.Volume{Name: "aesm-socket", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: AESMSocket, Type: &socket}}},
			corev1.VolumeMount{Name: "aesm-socket", MountPath: AESMSocket})
	}
	if o.DataPVC != "" {
		addVolume(corev1.Volume{Name: "nfs-storage", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: o.DataPVC}}},
			corev1.VolumeMount{Name: "nfs-storage", MountPath: "/ppml/data"})
	}
	if driver {
		addVolume(corev1.Volume{Name: "secure-keys", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: SSLKeysSecret}}},
			corev1.VolumeMount{Name: "secure-keys", MountPath: "/ppml/keys", ReadOnly: true})
		addVolume(corev1.Volume{Name: "kubeconfig", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: KubeconfigSecret}}},
			corev1.VolumeMount{Name: "kubeconfig", MountPath: "/root/.kube", ReadOnly: true})
	}

	addEnv := func(e corev1.EnvVar) {
		for _, x := range c.Env {
			if x.Name == e.Name {
				return
			}
		}
		c.Env = append(c.Env, e)
	}
	// Values are strings: upstream's unquoted booleans are not valid.
	addEnv(corev1.EnvVar{Name: "ATTESTATION", Value: strconv.FormatBool(o.Attestation)})
	url := o.AttestationURL
	if url == "" {
		url = "your_attestation_url"
	}
	addEnv(corev1.EnvVar{Name: "ATTESTATION_URL", Value: url})
	addEnv(corev1.EnvVar{Name: "ATTESTATION_TYPE", Value: o.AttestationType})
	if o.QuoteType != "" {
		addEnv(corev1.EnvVar{Name: "QUOTE_TYPE", Value: o.QuoteType})
	}
	if o.PCCSURL != "" {
		addEnv(corev1.EnvVar{Name: "PCCS_URL", Value: o.PCCSURL})
	}
	// Without attestation the pods start when kms-secret is absent.
	optional := !o.Attestation
	for _, kv := range [][2]string{{"APP_ID", "app_id"}, {"API_KEY", "api_key"}, {"ATTESTATION_POLICYID", "policy_id"}} {
		addEnv(corev1.EnvVar{Name: kv[0], ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: KMSSecret}, Key: kv[1], Optional: &optional}}})
	}
	addEnv(corev1.EnvVar{Name: "MALLOC_ARENA_MAX", Value: strconv.Itoa(o.MallocArenaMax)})

	if o.SGXEnabled {
		enc := o.SGXExecutorMemory
		if driver {
			enc = o.SGXDriverMemory
		}
		epc, _ := ParseMemory(enc)
		if c.Resources.Requests == nil {
			c.Resources.Requests = corev1.ResourceList{}
		}
		if c.Resources.Limits == nil {
			c.Resources.Limits = corev1.ResourceList{}
		}
		for rn, q := range map[corev1.ResourceName]*resource.Quantity{
			ResourceEPC: resource.NewQuantity(epc, resource.DecimalSI), ResourceEnclave: resource.NewQuantity(1, resource.DecimalSI),
			ResourceProvision: resource.NewQuantity(1, resource.DecimalSI)} {
			// Extended resources: request = limit.
			if _, ok := c.Resources.Limits[rn]; !ok {
				c.Resources.Limits[rn] = *q
				c.Resources.Requests[rn] = *q
			}
		}
	}
}

func hasVolume(pod *corev1.Pod, name string) bool {
	for _, v := range pod.Spec.Volumes {
		if v.Name == name {
			return true
		}
	}
	return false
}
