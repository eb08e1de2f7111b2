package server_test

import (
	"context"
	"sync"
	"testing"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/server/servertest"
)

// BenchmarkEHSMGenerateDataKey drives GenerateDataKeyWithoutPlaintext over
// HTTPS against an in-process server on SQLite, from 16 concurrent clients
// (b.SetParallelism), so that a -cpuprofile shows the server's hot path.
//
//	go test ./server -run XXX -bench EHSM -cpuprofile cpu.out
func BenchmarkEHSMGenerateDataKey(b *testing.B) { benchEHSM(b, "gen") }

// BenchmarkEHSMDecrypt is the same for Decrypt.
func BenchmarkEHSMDecrypt(b *testing.B) { benchEHSM(b, "dec") }

func benchEHSM(b *testing.B, op string) {
	inst := servertest.Start(b, servertest.Options{})
	e, cfg := inst.Enroll(b)
	httpc, err := client.HTTPClient(inst.CAFile, 128)
	if err != nil {
		b.Fatal(err)
	}
	cfg.HTTP = httpc
	if e, err = client.NewEHSM(cfg); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	keyID, err := e.CreateKey(ctx, "EH_AES_GCM_256")
	if err != nil {
		b.Fatal(err)
	}
	ct, err := e.GenerateDataKeyWithoutPlaintext(ctx, keyID, 32, "dGVzdA==")
	if err != nil {
		b.Fatal(err)
	}
	var once sync.Once
	b.SetParallelism(8) // 16 clients on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var err error
			if op == "gen" {
				_, err = e.GenerateDataKeyWithoutPlaintext(ctx, keyID, 32, "dGVzdA==")
			} else {
				_, err = e.Decrypt(ctx, keyID, ct, "dGVzdA==")
			}
			if err != nil {
				once.Do(func() { b.Error(err) })
			}
		}
	})
}
