package files

import "testing"

func TestParseParquetAlgorithm(t *testing.T) {
	for in, want := range map[string]string{"": "", "aes_gcm_v1": "AES_GCM_V1", "AES_GCM_CTR_V1": "AES_GCM_CTR_V1"} {
		if got, err := ParseParquetAlgorithm(in); err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	if _, err := ParseParquetAlgorithm("AES_CBC"); err == nil || err.Error() != `--parquet-algorithm "AES_CBC": use AES_GCM_V1 or AES_GCM_CTR_V1` {
		t.Errorf("AES_CBC: %v", err)
	}
}
