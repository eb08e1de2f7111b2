package attestapi

import (
	"io"
	"net/http"

	"github.com/ppml-project/ppml/kms"
)

const maxBody = 1 << 20

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return nil, &kms.Error{Kind: kms.KindInvalid, Code: "bad_body", Msg: "the request body is larger than 1 MiB or could not be read"}
	}
	return b, nil
}
