package kms

import "time"

// HoldArgonSlots takes every argon2id slot and sets the wait for one to d,
// as a flood of made-up tokens would; release undoes both.
func HoldArgonSlots(d time.Duration) (release func()) {
	old := argonWait
	argonWait = d
	for range cap(argonSlots) {
		argonSlots <- struct{}{}
	}
	return func() {
		for range cap(argonSlots) {
			<-argonSlots
		}
		argonWait = old
	}
}
