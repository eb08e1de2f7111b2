// Package kms is the key management core: principals, primary keys with
// versions, data keys, and every cryptographic operation. Protocol adapters
// (api/ehsm, api/bigdlkms, api/native) authenticate callers and translate
// wire formats; all policy (tenancy, key states, deletion) lives here.
package kms

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/argon2"

	"github.com/ppml-project/ppml/audit"
	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/internal/boundedcache"
	"github.com/ppml-project/ppml/internal/limit"
	"github.com/ppml-project/ppml/kms/rootkey"
	"github.com/ppml-project/ppml/store"
	"github.com/ppml-project/ppml/store/rowmac"
)

// Config configures a Service.
type Config struct {
	Store  store.Store
	Root   *rootkey.Keyring
	Audit  *audit.Logger
	Logger *slog.Logger
	Now    func() time.Time // injectable clock; time.Now if nil
	// DeletionWindow is the default wait before a scheduled deletion.
	DeletionWindow time.Duration
	// AdminToken is the operator credential for enrollment and root key
	// operations; OpenEnrollment lets anyone enroll (development only).
	AdminToken string
	// AdminTokenSHA256, when set, is the SHA-256 of the admin token
	// instead of AdminToken (the server never holds the token).
	AdminTokenSHA256 [32]byte
	OpenEnrollment   bool
	// BigDLDataKeyBytes is the size of BigDL KMS data keys (16 or 32).
	BigDLDataKeyBytes int
	// Limits bound the slow work callers can cause; zero fields take
	// DefaultLimits.
	Limits Limits
	// AuthFailureDelay is how long a refused authentication waits before
	// it is answered (0: DefaultAuthFailureDelay; negative: not at all). A
	// waiting request costs no CPU, and a client guessing credentials over
	// a few connections gets few answers.
	AuthFailureDelay time.Duration
}

// DefaultAuthFailureDelay is the default Config.AuthFailureDelay.
const DefaultAuthFailureDelay = time.Second

// Limits bound the slow operations of the KMS: argon2id hashes of BigDL
// tokens (charged to the user name presented, before it is known to be
// genuine) and RSA key generation (charged to the app).
type Limits struct {
	Argon limit.Config
	RSA   limit.Config
}

// DefaultLimits are the limits of a server with no settings: argon2id on
// at most half the cores and 10 hashes per second per core (each takes
// 19 MiB and ~25 ms of one core, so a flood of made-up tokens gets at most
// a quarter of the CPU; tokens verified before need no hash), 2 per second
// per user name, a 2 s wait;
// RSA generation (RSA-4096 takes seconds) on at most half the
// cores but at least 2, one at a time per app, a 10 s wait.
func DefaultLimits() Limits {
	half := max(1, runtime.GOMAXPROCS(0)/2)
	return Limits{
		Argon: limit.Config{Global: half, PerCaller: max(1, half/2), Wait: 2 * time.Second, Rate: float64(10 * runtime.GOMAXPROCS(0)), PerCallerRate: 2},
		RSA:   limit.Config{Global: max(2, half), PerCaller: 1, Wait: 10 * time.Second},
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	return Limits{Argon: l.Argon.Or(d.Argon), RSA: l.RSA.Or(d.RSA)}
}

// Service is the KMS core.
type Service struct {
	cfg Config
	now func() time.Time
	// cache keeps unwrapped key material and app secrets, which never change
	// once written (rotation adds versions; root rotation re-wraps the same
	// material), so a request needs at most the mutable key row, which is
	// checked (state, MAC) before the cache is consulted.
	cache *boundedcache.Map[string, []byte]
	// keys keeps verified key rows for requests that carry a key
	// generation (keycache.go).
	keys    *boundedcache.Map[string, cachedKey]
	release ReleaseAuthorizer
	rows    *rowmac.Keeper
	rewrap  rewrapJob
	argon   *limit.Limiter
	rsa     *limit.Limiter
	// verified remembers, per BigDL user, a keyed hash of the last token
	// that passed argon2id together with the stored secret it matched: a
	// genuine user's next requests cost an HMAC, not an argon2id slot, so a
	// flood of made-up tokens (which never gets here) cannot starve them.
	// The key lives only in this process's memory, which holds the root
	// key anyway.
	verified *boundedcache.Map[string, [32]byte]
	tokenKey []byte
	hashTime atomic.Int64 // moving mean of argon2id hash durations (ns)
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DeletionWindow == 0 {
		cfg.DeletionWindow = 7 * 24 * time.Hour
	}
	if cfg.BigDLDataKeyBytes == 0 {
		cfg.BigDLDataKeyBytes = 32
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AuthFailureDelay == 0 {
		cfg.AuthFailureDelay = DefaultAuthFailureDelay
	}
	cfg.Limits = cfg.Limits.withDefaults()
	return &Service{cfg: cfg, now: cfg.Now, cache: boundedcache.New[string, []byte](10000), keys: newKeyCache(), rows: newKeyRows(cfg),
		argon:    limit.New("checking BigDL tokens (argon2id)", cfg.Limits.Argon),
		rsa:      limit.New("RSA key generations", cfg.Limits.RSA),
		verified: boundedcache.New[string, [32]byte](10000), tokenKey: randomBytes(32)}
}

// Now returns the service clock's time.
func (s *Service) Now() time.Time { return s.now() }

// Sealed reports whether keys are unavailable.
func (s *Service) Sealed() bool { return s.cfg.Root.Sealed() }

// OpenEnrollment reports whether enrollment needs no admin credential.
func (s *Service) OpenEnrollment() bool { return s.cfg.OpenEnrollment }

// Caller identifies who asks, for tenancy and audit.
type Caller struct {
	ID     string // app id or bigdl:<user>; "admin" for operator calls
	API    string // protocol adapter name
	Remote string
}

// record audits one operation and returns its error, or, when the audit
// record cannot be written, an Unavailable error in its place: an operation
// that cannot be audited is not acknowledged.
func (s *Service) record(c Caller, action, keyID string, err error) error {
	ev := audit.Event{Time: s.now().UTC(), API: c.API, Principal: c.ID, Action: action, KeyID: keyID, Remote: c.Remote, Result: "ok"}
	if err != nil {
		ev.Result = fault.CodeOf(err)
		ev.Reason = err.Error()
	}
	if aerr := s.cfg.Audit.Record(ev); aerr != nil {
		s.cfg.Logger.Error("audit record not written: failing the request", "action", action, "err", aerr)
		return audit.Refusal(action)
	}
	return err
}

// AuthFailed audits a refused authentication (bad signature, token, API
// key, admin token, replay), waits AuthFailureDelay and returns err, or the
// audit refusal when the record cannot be written. Adapters call it for the
// checks they make themselves; the checks of this package call it on their
// own.
func (s *Service) AuthFailed(ctx context.Context, c Caller, action string, err error) error {
	if c.ID == "" {
		c.ID = "-"
	}
	if d := s.cfg.AuthFailureDelay; d > 0 {
		limit.Sleep(ctx, d) // a client that hangs up ends the wait
	}
	if aerr := s.record(c, action, "", err); fault.CodeOf(aerr) == "audit_unavailable" {
		return aerr
	}
	return err
}

// CheckAdmin compares a presented admin token in constant time; a wrong
// token is audited.
func (s *Service) CheckAdmin(ctx context.Context, token string) error {
	err := s.checkAdmin(token)
	if err != nil && token != "" {
		return s.AuthFailed(ctx, Caller{ID: "admin?", API: "auth"}, "AdminAuthenticate", err)
	}
	return err
}

func (s *Service) checkAdmin(token string) error {
	hashOnly := s.cfg.AdminTokenSHA256 != [32]byte{}
	if (s.cfg.AdminToken == "" && !hashOnly) || token == "" {
		return fault.Errorf(fault.Unauthenticated, "admin_required", "this operation needs the admin credential: send 'Authorization: Bearer <token>' with the token from the server's admin token file")
	}
	a := sha256.Sum256([]byte(token))
	b := s.cfg.AdminTokenSHA256
	if !hashOnly {
		b = sha256.Sum256([]byte(s.cfg.AdminToken))
	}
	if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
		return fault.Errorf(fault.Unauthenticated, "admin_invalid", "the admin token is wrong: use the token from the server's admin token file")
	}
	return nil
}

// EnrollmentHelp names the two ways to enroll apps and BigDL users.
const EnrollmentHelp = "enrollment needs the admin credential (Authorization: Bearer <token from the server's admin token file>). Two ways: " +
	"the operator enrolls once with `ppml enroll --kms URL --admin-token-file admin.token` (an app id and API key for eHSM, BigDL AS and native clients) " +
	"or `ppml enroll --kms URL --admin-token-file admin.token --bigdl-user NAME --bigdl-token-file FILE` (a BigDL KMS user); " +
	"or, on a trusted network only, the server runs with --open-enrollment"

// CheckEnrollment authorises an enrollment (app or BigDL user creation).
func (s *Service) CheckEnrollment(ctx context.Context, adminToken string) error {
	if s.cfg.OpenEnrollment {
		return nil
	}
	if adminToken == "" {
		return fault.Errorf(fault.Unauthenticated, "admin_required", "%s", EnrollmentHelp)
	}
	return s.CheckAdmin(ctx, adminToken)
}

func (s *Service) internal(op string, err error) error { return InternalError(s.cfg.Logger, op, err) }

// InternalError is the answer to an unexpected error of op, shared by the
// services over the key store: sealed, store_unavailable (retryable: another
// replica may answer), the error itself when it already is a fault, else
// internal (logged; the details are not for the client).
func InternalError(log *slog.Logger, op string, err error) error {
	if errors.Is(err, rootkey.ErrSealed) || errors.Is(err, rootkey.ErrUninitialized) {
		return fault.Errorf(fault.Sealed, "sealed", "%s", err.Error())
	}
	var ke *fault.Error
	if errors.As(err, &ke) {
		return err
	}
	if store.IsUnavailable(err) {
		log.Warn("database unreachable", "op", op, "err", err)
		return StoreUnavailable(op)
	}
	log.Error("internal error", "op", op, "err", err)
	return fault.Errorf(fault.Internal, "internal", "Server internal error during %s, please contact the administrator", op)
}

// StoreUnavailable is the retryable error of a request this replica could
// not serve because its database is unreachable.
func StoreUnavailable(op string) error {
	return fault.Errorf(fault.Unavailable, "store_unavailable", "%s not done: this replica cannot reach its database right now; retry in a moment (another replica may answer)", op)
}

func (s *Service) requireUnsealed() error {
	if s.cfg.Root.Sealed() {
		if !s.cfg.Root.Initialized() {
			return fault.Errorf(fault.Sealed, "sealed", "%s", rootkey.ErrUninitialized.Error())
		}
		return fault.Errorf(fault.Sealed, "sealed", "%s", rootkey.ErrSealed.Error())
	}
	return nil
}

// --- apps (eHSM-style principals) ---

const apiKeyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randomString(n int) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(apiKeyAlphabet)))
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(err)
		}
		b[i] = apiKeyAlphabet[v.Int64()]
	}
	return string(b)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// Enroll creates an app with a fresh 32-character API key. The caller has
// already passed CheckEnrollment.
func (s *Service) Enroll(ctx context.Context, c Caller) (appID, apiKey string, err error) {
	defer func() { err = s.record(c, "Enroll", "", err) }()
	if err := s.requireUnsealed(); err != nil {
		return "", "", err
	}
	appID = uuid.NewString()
	apiKey = randomString(32)
	err = s.cfg.Root.Seal(ctx, []byte(apiKey), store.AppSecretAAD(appID), func(wrapped []byte) error {
		return s.cfg.Store.CreateApp(ctx, store.App{ID: appID, Kind: "ehsm", Secret: wrapped, CreatedAt: s.now()})
	})
	if err != nil {
		return "", "", s.internal("Enroll", err)
	}
	c.ID = appID
	return appID, apiKey, nil
}

// AppKey returns an app's API key, for protocols that verify an HMAC made
// with it. Unknown apps get fault.Unauthenticated.
func (s *Service) AppKey(ctx context.Context, appID string) ([]byte, error) {
	if err := s.requireUnsealed(); err != nil {
		return nil, err
	}
	if key, ok := s.cache.Get("app\x00" + appID); ok {
		return key, nil
	}
	a, err := s.cfg.Store.GetApp(ctx, appID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && a.Kind != "ehsm") {
		return nil, s.AuthFailed(ctx, Caller{ID: appID, API: "auth"}, "Authenticate", fault.Errorf(fault.Unauthenticated, "unknown_app", "appid error: no app %q is enrolled here; enroll first (GET /ehsm?Action=Enroll with the admin token)", appID))
	}
	if err != nil {
		return nil, s.internal("authentication", err)
	}
	key, err := s.cfg.Root.Unwrap(a.Secret, store.AppSecretAAD(appID))
	if err != nil {
		if cerr := s.cfg.Root.CheckCurrent(ctx); cerr != nil {
			return nil, fault.Errorf(fault.Sealed, "sealed", "%s", cerr.Error())
		}
		return nil, s.internal("authentication", fmt.Errorf("app %s secret: %w", appID, err))
	}
	s.cache.Put("app\x00"+appID, key)
	return key, nil
}

// AuthenticateApp checks an app id and API key (native API).
func (s *Service) AuthenticateApp(ctx context.Context, appID, apiKey string) error {
	key, err := s.AppKey(ctx, appID)
	if err != nil {
		return err
	}
	a := sha256.Sum256(key)
	b := sha256.Sum256([]byte(apiKey))
	if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
		return s.AuthFailed(ctx, Caller{ID: appID, API: "auth"}, "Authenticate", fault.Errorf(fault.Unauthenticated, "bad_api_key", "the API key does not match app %s", appID))
	}
	return nil
}

// --- BigDL users ---

const bigdlPrefix = "bigdl:"

// BigDLOwner is the principal id of a BigDL KMS user.
func BigDLOwner(user string) string { return bigdlPrefix + user }

func validName(kind, name string) error {
	if name == "" {
		return fault.Errorf(fault.Invalid, "invalid_name", "%s name is empty", kind)
	}
	if len(name) > 256 {
		return fault.Errorf(fault.Invalid, "invalid_name", "%s name is longer than 256 bytes", kind)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fault.Errorf(fault.Invalid, "invalid_name", "%s name contains a control character", kind)
		}
	}
	return nil
}

// argon2id parameters (OWASP minimum: m=19 MiB, t=2, p=1).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
)

// hashToken hashes a token within the argon2id limit (Limits.Argon),
// charged to principal: under a flood of made-up tokens a request gives up
// after a bounded wait with a retryable error instead of queueing without
// end, and unbounded hashing cannot exhaust memory.
func (s *Service) hashToken(ctx context.Context, principal, token string, salt []byte) ([]byte, error) {
	release, err := s.argon.Acquire(ctx, principal)
	if err != nil {
		return nil, err
	}
	defer release()
	start := time.Now()
	h := argon2.IDKey([]byte(token), salt, argonTime, argonMemory, argonThreads, 32)
	d := int64(time.Since(start))
	if old := s.hashTime.Load(); old == 0 {
		s.hashTime.Store(d)
	} else {
		s.hashTime.Store(old - old/8 + d/8) // a moving mean of recent hashes
	}
	return h, nil
}

// imitateHash takes as long as checking a token of an existing user does,
// within the same limit, so that answers do not tell which users exist: it
// waits the moving mean of recent hashes instead of hashing (the first one
// hashes), so that a flood of made-up user names costs no CPU.
func (s *Service) imitateHash(ctx context.Context, principal, token string) error {
	d := time.Duration(s.hashTime.Load())
	if d == 0 {
		_, err := s.hashToken(ctx, principal, token, make([]byte, 16))
		return err
	}
	release, err := s.argon.Acquire(ctx, principal)
	if err != nil {
		return err
	}
	defer release()
	limit.Sleep(ctx, d)
	return nil
}

// CreateBigDLUser creates a BigDL KMS user whose token is stored as a salted
// argon2id hash. The caller has already passed CheckEnrollment.
func (s *Service) CreateBigDLUser(ctx context.Context, c Caller, user, token string) (err error) {
	c.ID = BigDLOwner(user)
	defer func() { err = s.record(c, "CreateUser", "", err) }()
	if err := validName("user", user); err != nil {
		return err
	}
	if len(token) < 8 {
		return fault.Errorf(fault.Invalid, "weak_token", "the token must be at least 8 characters")
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return s.internal("CreateUser", err)
	}
	h, err := s.hashToken(ctx, "enrollment:"+user, token, salt) // the operator's work: within the global limit only
	if err != nil {
		return err
	}
	secret := append(salt, h...)
	err = s.cfg.Store.CreateApp(ctx, store.App{ID: BigDLOwner(user), Kind: "bigdl", Secret: secret, CreatedAt: s.now()})
	if errors.Is(err, store.ErrExists) {
		return fault.Errorf(fault.Conflict, "user_exists", "user [%s] already exists; pick another name", user)
	}
	if err != nil {
		return s.internal("CreateUser", err)
	}
	return nil
}

// AuthenticateBigDLUser checks a user name and token.
func (s *Service) AuthenticateBigDLUser(ctx context.Context, user, token string) error {
	bad := fault.Errorf(fault.Unauthenticated, "bad_credentials", "wrong user or token: user [%s] is unknown or its token does not match", user)
	a, err := s.cfg.Store.GetApp(ctx, BigDLOwner(user))
	if errors.Is(err, store.ErrNotFound) {
		if err := s.imitateHash(ctx, BigDLOwner(user), token); err != nil {
			return err
		}
		return s.AuthFailed(ctx, Caller{ID: BigDLOwner(user), API: "auth"}, "Authenticate", bad)
	}
	if err != nil {
		return s.internal("authentication", err)
	}
	if a.Kind != "bigdl" || len(a.Secret) != 48 {
		return s.AuthFailed(ctx, Caller{ID: BigDLOwner(user), API: "auth"}, "Authenticate", bad)
	}
	mac := hmac.New(sha256.New, s.tokenKey)
	mac.Write(a.Secret)
	mac.Write([]byte(token))
	var seen [32]byte
	mac.Sum(seen[:0])
	if last, ok := s.verified.Get(a.ID); ok && subtle.ConstantTimeCompare(last[:], seen[:]) == 1 {
		return nil
	}
	h, err := s.hashToken(ctx, BigDLOwner(user), token, a.Secret[:16])
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(h, a.Secret[16:]) != 1 {
		return s.AuthFailed(ctx, Caller{ID: BigDLOwner(user), API: "auth"}, "Authenticate", bad)
	}
	s.verified.Put(a.ID, seen)
	return nil
}

// InFlight is the number of bounded slow operations in progress, by kind
// (metrics): argon2id token checks and RSA key generations.
func (s *Service) InFlight() map[string]int {
	return map[string]int{"argon2id": s.argon.InFlight(), "rsa": s.rsa.InFlight()}
}

// CountKeys counts keys by state (metrics).
func (s *Service) CountKeys(ctx context.Context) (map[string]int, error) {
	return s.cfg.Store.CountKeys(ctx)
}
