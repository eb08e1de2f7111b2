package manifests

import _ "embed"

// SGXDevicePluginRelease names the pinned upstream releases of
// SGXDevicePlugin.
const SGXDevicePluginRelease = "intel-device-plugins-for-kubernetes v0.36.0, node-feature-discovery v0.17.1"

// sgxDevicePlugin is rendered from those releases by hack/sgxplugin/render.sh.
//
//go:embed sgxplugin/sgx-device-plugin.yaml
var sgxDevicePlugin []byte

// SGXDevicePlugin returns the manifests that make SGX usable by pods, the
// prerequisite of the --sgx variant: node feature discovery (namespace
// node-feature-discovery, its CRDs), Intel's NodeFeatureRule intel.sgx
// (node label intel.feature.node.kubernetes.io/sgx and the
// sgx.intel.com/epc extended resource from the EPC size NFD reads) and the
// SGX device plugin DaemonSet in kube-system on the labelled nodes
// (sgx.intel.com/enclave and sgx.intel.com/provision). Intel's cert-manager
// admission webhook is left out: the ppml pods request the resources and
// mount the AESM socket themselves.
func SGXDevicePlugin() []byte { return append([]byte(nil), sgxDevicePlugin...) }
