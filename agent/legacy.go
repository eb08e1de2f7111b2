package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/enclave"
)

// eHSM VerifyQuote results (sgx_ql_qv_result_t) that BigDL accepts with a
// warning (ehsm-protocol.md §8.2).
var ehsmWarn = map[int]bool{0xA001: true, 0xA002: true, 0xA003: true, 0xA007: true, 0xA008: true}

// legacyQuote gets a quote over the -p report data: the legacy services
// bind no nonce.
func legacyQuote(c *Config, q enclave.Quoter) ([]byte, error) {
	rd, err := legacyReportData(c.UserReportData, c.QuoteType == "TDX")
	if err != nil {
		return nil, err
	}
	quote, err := q.Quote(rd)
	if err != nil {
		return nil, fmt.Errorf("getting a quote from %s: %w", q.Describe(), err)
	}
	return quote, nil
}

func attestEHSM(ctx context.Context, c *Config, cfg client.Config, q enclave.Quoter) (string, error) {
	quote, err := legacyQuote(c, q)
	if err != nil {
		return "", err
	}
	e, err := client.NewEHSM(cfg)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, 16)
	rand.Read(nonce)
	res, err := e.Call(ctx, "VerifyQuote", map[string]any{"quote": base64.StdEncoding.EncodeToString(quote),
		"nonce": base64.StdEncoding.EncodeToString(nonce), "policyId": c.PolicyID})
	if err != nil {
		return "", err
	}
	code, err := intField(res["result"])
	if err != nil {
		return "", fmt.Errorf("the eHSM answer has no integer result: %v", err)
	}
	switch {
	case code == 0:
		return "", nil
	case ehsmWarn[code]:
		return fmt.Sprintf(lineEHSMWarn, code), nil
	}
	return "", fmt.Errorf("eHSM VerifyQuote result %d (0x%X)", code, code)
}

func attestBigDL(ctx context.Context, c *Config, cfg client.Config, q enclave.Quoter) (string, error) {
	quote, err := legacyQuote(c, q)
	if err != nil {
		return "", err
	}
	h, err := client.HTTPClient(c.CAFile, 0)
	if err != nil {
		return "", err
	}
	req := map[string]string{"appID": c.AppID, "apiKey": c.APIKey, "quote": base64.StdEncoding.EncodeToString(quote)}
	if c.PolicyID != "" {
		req["policyID"] = c.PolicyID
	}
	body, _ := json.Marshal(req)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.URL, "/")+"/verifyQuote", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := h.Do(hr)
	if err != nil {
		return "", fmt.Errorf("contacting the attestation service: %w", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		return "", fmt.Errorf("the attestation service answered HTTP %d with a body that is not JSON: %.200s", resp.StatusCode, data)
	}
	code, err := intField(out["result"])
	if err != nil {
		return "", fmt.Errorf("the answer has no integer result (%v): %.200s", err, data)
	}
	switch code {
	case 0:
		return "", nil
	case 1:
		return lineBigDLWarn, nil
	}
	msg, _ := out["message"].(string)
	return "", fmt.Errorf("verifyQuote result %d: %s", code, msg)
}

// intField accepts a JSON number or a numeric string, as BigDL's getter does.
func intField(v any) (int, error) {
	switch x := v.(type) {
	case float64:
		return int(x), nil
	case string:
		return strconv.Atoi(x)
	case json.Number:
		n, err := x.Int64()
		return int(n), err
	}
	return 0, fmt.Errorf("result is %T", v)
}
