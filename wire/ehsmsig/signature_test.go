package ehsmsig

import (
	"bytes"
	"encoding/json"
	"testing"
)

const apiKey = "Q7mZp2Kx9VbT4nHc8RwLs3YjF6dGu1Ae"

func decode(t *testing.T, s string) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// Vectors from ehsm-protocol.md §3.4 and §8.3.
func TestReferenceVectors(t *testing.T) {
	cases := []struct {
		name, body, canon, sign string
	}{
		{"GenerateDataKeyWithoutPlaintext",
			`{"appid":"7f3c2a91-5b4e-4d2a-9c1f-3e8b6a0d4c21","payload":{"keyid":"0b9f5c3e-8a1d-4f6b-b2c7-5d4e3f2a1b0c","keylen":32,"aad":"test"},"timestamp":"1700000000000"}`,
			"appid=7f3c2a91-5b4e-4d2a-9c1f-3e8b6a0d4c21&payload=aad=test&keyid=0b9f5c3e-8a1d-4f6b-b2c7-5d4e3f2a1b0c&keylen=32&timestamp=1700000000000",
			"ImZ8b5Gw/UWfXu4wg5/pdSQYC40UMboAEg+7M1jlvlQ="},
		{"Decrypt with nonce and empty aad",
			`{"appid":"7f3c2a91-5b4e-4d2a-9c1f-3e8b6a0d4c21","nonce":"n-20231114-0001","timestamp":"1700000123456","payload":{"keyid":"0b9f5c3e-8a1d-4f6b-b2c7-5d4e3f2a1b0c","ciphertext":"3q2+7w==","aad":""}}`,
			"appid=7f3c2a91-5b4e-4d2a-9c1f-3e8b6a0d4c21&nonce=n-20231114-0001&payload=ciphertext=3q2+7w==&keyid=0b9f5c3e-8a1d-4f6b-b2c7-5d4e3f2a1b0c&timestamp=1700000123456",
			"2A+HaqrFPxzOQuG9lqamNzJlZYOQJ/8NGN028e02Hyg="},
		{"CreateKey",
			`{"appid":"7f3c2a91-5b4e-4d2a-9c1f-3e8b6a0d4c21","payload":{"keyspec":"EH_AES_GCM_128","origin":"EH_INTERNAL_KEY"},"timestamp":"1700000000000"}`,
			"appid=7f3c2a91-5b4e-4d2a-9c1f-3e8b6a0d4c21&payload=keyspec=EH_AES_GCM_128&origin=EH_INTERNAL_KEY&timestamp=1700000000000",
			"YR6iGI0uwQdyc7+ezuaJGtAeClbtfTvug4o+0TlvvcY="},
		{"loose emptiness",
			`{"a":false,"b":0,"c":"0","d":true,"e":{},"f":[1,2],"g":null,"h":"x&y=z"}`,
			"c=0&d=true&e=&f=0=1&1=2&h=x&y=z",
			"6zl3wLVyEF2BXLd9LeClDQmJLrG5tnmmKgdJZ2r2O80="},
		{"VerifyQuote result 0",
			`{"result":0,"nonce":"test","mr_enclave":"68823bc62f409ee33a32ea270cfe45d4b19a6fb3c8570d7bc186cbe062398e8f","mr_signer":"9affcfae47b848ec2caf1c49b4b283531e1cc425f93582b36806e52a43d78d1a"}`,
			"mr_enclave=68823bc62f409ee33a32ea270cfe45d4b19a6fb3c8570d7bc186cbe062398e8f&mr_signer=9affcfae47b848ec2caf1c49b4b283531e1cc425f93582b36806e52a43d78d1a&nonce=test",
			"fnrcaewGFbdQZDDjIg0+FEGFCkqq/utmojQ3ILunFfY="},
		{"VerifyQuote result 40962",
			`{"result":40962,"nonce":"test","mr_enclave":"68823bc62f409ee33a32ea270cfe45d4b19a6fb3c8570d7bc186cbe062398e8f","mr_signer":"9affcfae47b848ec2caf1c49b4b283531e1cc425f93582b36806e52a43d78d1a"}`,
			"mr_enclave=68823bc62f409ee33a32ea270cfe45d4b19a6fb3c8570d7bc186cbe062398e8f&mr_signer=9affcfae47b848ec2caf1c49b4b283531e1cc425f93582b36806e52a43d78d1a&nonce=test&result=40962",
			"N+BySn2RR20aMFOUnirZ7KkKFG/rewCOMpCM4KRybFM="},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Canonical(decode(t, c.body))
			if got != c.canon {
				t.Fatalf("canonical\n got %s\nwant %s", got, c.canon)
			}
			if s := Sign([]byte(apiKey), got); s != c.sign {
				t.Fatalf("sign %s, want %s", s, c.sign)
			}
			if !Verify([]byte(apiKey), got, c.sign) || Verify([]byte(apiKey+"x"), got, c.sign) {
				t.Fatal("Verify disagrees with Sign")
			}
		})
	}
}

func TestArrayEmptinessAndOrder(t *testing.T) {
	got := Canonical(decode(t, `{"B":1,"_":2,"a":[""],"b":[[]],"c":[0],"d":[null,null],"k":[1,2,3,4,5,6,7,8,9,10,11]}`))
	// [""] and [[]] stringify to "" and are dropped; [0] ("0") and
	// [null,null] (",") are kept but their elements are loosely empty, so
	// they render empty; keys "10" < "2" in code-unit order.
	want := "B=1&_=2&c=&d=&k=0=1&1=2&10=11&2=3&3=4&4=5&5=6&6=7&7=8&8=9&9=10"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// Numbers are rendered as eHSM's Node.js server renders JSON.parse's value
// (String(number)), so a client that signed that text verifies. Expected
// values are JavaScript's output for each literal.
func TestNumbersAsJavaScriptRendersThem(t *testing.T) {
	cases := []struct{ literal, want string }{
		{"1.0", "n=1"}, // same value, other text: same signature
		{"1e2", "n=100"},
		{"1.50", "n=1.5"},
		{"-7", "n=-7"},
		{"0.1", "n=0.1"},
		{"1e20", "n=100000000000000000000"},
		{"1e21", "n=1e+21"}, // exponent form from 1e21 on
		{"999999999999999999999", "n=1e+21"},
		{"-1e21", "n=-1e+21"},
		{"123456789012345678901234", "n=1.2345678901234569e+23"},
		{"1e-6", "n=0.000001"}, // fixed form down to 1e-6
		{"-0.000001", "n=-0.000001"},
		{"9.99999e-7", "n=9.99999e-7"},
		{"1.5e-7", "n=1.5e-7"}, // no zero padding of the exponent
		{"-1.2345e-8", "n=-1.2345e-8"},
		{"1e-10", "n=1e-10"},
		{"1e400", "n=Infinity"}, // JSON.parse overflows to Infinity
		{"-1e400", "n=-Infinity"},
		{"1e-400", ""}, // underflows to 0, which is loosely empty
		{"-0", ""},
		{"[-0.0]", "n="}, // String([-0]) is "0": kept, its element dropped
		{"[1e-7,1e21]", "n=0=1e-7&1=1e+21"},
	}
	for _, c := range cases {
		got := Canonical(decode(t, `{"n":`+c.literal+`}`))
		if got != c.want {
			t.Errorf("%s: canonical %q, want %q", c.literal, got, c.want)
		}
		if sign := Sign([]byte(apiKey), c.want); !Verify([]byte(apiKey), got, sign) {
			t.Errorf("%s: a signature over eHSM's string %q does not verify", c.literal, c.want)
		}
	}
}

// Keys sort by UTF-16 code units as JavaScript's Array#sort does: a prefix
// first, and a supplementary character (surrogates 0xD800-0xDFFF) before
// U+E000..U+FFFF although its UTF-8 bytes sort after them.
func TestKeyOrderIsUTF16(t *testing.T) {
	got := Canonical(decode(t, `{"｡":10,"\ue000":9,"😀":8,"é":7,"b":6,"abc":5,"ab":4,"a":3,"_":2,"B":1}`))
	want := "B=1&_=2&a=3&ab=4&abc=5&b=6&é=7&😀=8&\ue000=9&｡=10"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	for _, c := range []struct {
		a, b string
		less bool
	}{
		{"a", "ab", true}, {"ab", "a", false}, {"a", "a", false},
		{"", "a", true}, {"a", "", false}, {"", "", false},
		{"B", "_", true}, {"_", "a", true}, {"a", "B", false},
		{"😀", "｡", true}, {"｡", "😀", false}, {"😀", "😁", true},
	} {
		if got := lessUTF16(c.a, c.b); got != c.less {
			t.Errorf("lessUTF16(%q, %q) = %v, want %v", c.a, c.b, got, c.less)
		}
	}
}

// The envelope holds nonce and payload only when given: the signed string
// of a BigDL request (no nonce) has no nonce field and of ListKey no payload.
func TestEnvelope(t *testing.T) {
	for _, c := range []struct {
		nonce   string
		payload any
		want    string
	}{
		{"", nil, "appid=app&timestamp=1700000000000"},
		{"n-1", nil, "appid=app&nonce=n-1&timestamp=1700000000000"},
		{"", map[string]any{"keyid": "k"}, "appid=app&payload=keyid=k&timestamp=1700000000000"},
		{"n-1", map[string]any{}, "appid=app&nonce=n-1&payload=&timestamp=1700000000000"},
	} {
		if got := Canonical(Envelope("app", c.nonce, "1700000000000", c.payload)); got != c.want {
			t.Errorf("nonce %q payload %v: got %q, want %q", c.nonce, c.payload, got, c.want)
		}
	}
}
