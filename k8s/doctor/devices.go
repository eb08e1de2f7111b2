package doctor

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// DeviceChecks checks the local TEE devices, relative to o.DevRoot: with
// TEE "sgx" /dev/sgx_enclave and /dev/sgx_provision, with "tdx"
// /dev/tdx_guest. "auto" expects SGX devices when the CPU flags in
// /proc/cpuinfo include sgx or an SGX device exists, and the TDX device when
// they include tdx_guest or it exists; "none" checks nothing.
func DeviceChecks(opts Options) []Check {
	o := opts.withDefaults()
	p := func(rel string) string { return filepath.Join(o.DevRoot, rel) }
	exists := func(rel string) bool { _, err := os.Stat(p(rel)); return err == nil }
	var sgx, tdx bool
	switch o.TEE {
	case "none":
		return []Check{skip("local TEE devices", "--tee none")}
	case "sgx":
		sgx = true
	case "tdx":
		tdx = true
	case "auto":
		flags := cpuFlags(p("proc/cpuinfo"))
		sgx = flags["sgx"] || exists("dev/sgx_enclave") || exists("dev/sgx_provision") || exists("dev/sgx/enclave")
		tdx = flags["tdx_guest"] || exists("dev/tdx_guest")
	default:
		return []Check{fail("local TEE devices", fmt.Sprintf("--tee %q: want auto, sgx, tdx or none", o.TEE), "ppml doctor --tee auto")}
	}
	if !sgx && !tdx {
		return []Check{skip("local TEE devices", "this machine shows no SGX or TDX (no CPU flag, no device); on a node pass --tee sgx or --tee tdx")}
	}
	var out []Check
	if sgx {
		out = append(out,
			device(p, "dev/sgx_enclave", "dev/sgx/enclave",
				"SGX is off or the kernel has no SGX driver: enable SGX in the BIOS and use Linux >= 5.11 (in-kernel driver); dmesg | grep -i sgx",
				"add the user to the sgx group (sudo usermod -aG sgx $USER), or run in a pod requesting sgx.intel.com/enclave"),
			device(p, "dev/sgx_provision", "dev/sgx/provision",
				"SGX is off or the kernel has no SGX driver: enable SGX in the BIOS and use Linux >= 5.11 (in-kernel driver)",
				"add the user to the sgx_prv group (sudo usermod -aG sgx_prv $USER), or run in a pod requesting sgx.intel.com/provision"))
	}
	if tdx {
		out = append(out, device(p, "dev/tdx_guest", "dev/tdx-guest",
			"not a TDX guest, or the tdx_guest driver is not loaded: run inside a TD VM with Linux >= 6.2 and sudo modprobe tdx_guest",
			"run as root or give the user access to /dev/tdx_guest (udev rule)"))
	}
	return out
}

func device(p func(string) string, rel, legacy, missingFix, accessFix string) Check {
	name := "/" + rel
	path := p(rel)
	if _, err := os.Stat(path); err != nil {
		if _, lerr := os.Stat(p(legacy)); lerr == nil {
			path = p(legacy)
		} else {
			return fail(name, fmt.Sprintf("%s does not exist", path), missingFix)
		}
	}
	if err := unix.Access(path, unix.R_OK|unix.W_OK); err != nil {
		return fail(name, fmt.Sprintf("%s is not readable and writable by uid %d: %v", path, os.Getuid(), err), accessFix)
	}
	return pass(name, path)
}

func cpuFlags(path string) map[string]bool {
	b, err := os.ReadFile(path)
	m := map[string]bool{}
	if err != nil {
		return m
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || string(bytes.TrimSpace(k)) != "flags" {
			continue
		}
		for _, f := range bytes.Fields(v) {
			m[string(f)] = true
		}
		break
	}
	return m
}
