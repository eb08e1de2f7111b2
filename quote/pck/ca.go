package pck

// Common names of the certificates of a PCK chain.
const (
	CNPCKLeaf     = "Intel SGX PCK Certificate"
	CNPlatformCA  = "Intel SGX PCK Platform CA"
	CNProcessorCA = "Intel SGX PCK Processor CA"
)

// CA types of PCK certificates (and of PCK CRLs and collateral).
const (
	CAPlatform  = "platform"
	CAProcessor = "processor"
)

// CAType returns the CA type of a PCK CA by its common name; false when
// the name is neither PCK CA's.
func CAType(commonName string) (string, bool) {
	switch commonName {
	case CNPlatformCA:
		return CAPlatform, true
	case CNProcessorCA:
		return CAProcessor, true
	}
	return "", false
}
