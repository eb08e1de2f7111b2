package boundedcache

import "testing"

func TestBound(t *testing.T) {
	c := New[int, int](3)
	for i := 0; i < 10; i++ {
		c.Put(i, i*i)
		if len(c.m) > 3 {
			t.Fatalf("%d entries, bound 3", len(c.m))
		}
	}
	if v, ok := c.Get(9); !ok || v != 81 {
		t.Fatal("latest entry missing")
	}
	calls := 0
	f := func() int { calls++; return 7 }
	first := c.GetOrCompute(100, f)
	second := c.GetOrCompute(100, f) // cached: f is not called again
	if first != 7 || second != 7 || calls != 1 {
		t.Fatalf("GetOrCompute computed %d times", calls)
	}
	c.Put(100, 8) // replacing an entry never evicts another
	if v, _ := c.Get(100); v != 8 || len(c.m) != 3 {
		t.Fatal("replacement wrong")
	}
}
