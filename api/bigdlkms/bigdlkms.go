// Package bigdlkms serves the BigDL KMS REST protocol (bigdl-kms-protocol.md)
// over the kms core: plain-text answers as upstream, a double slash in the
// path accepted, empty query components ignored. Deliberate differences:
// user creation, root key rotation and share submission need the admin
// credential; duplicates answer 409; failures use real 4xx/5xx statuses,
// and a failing GET /dataKey resets the connection instead of answering,
// because BigDL's client ignores the status and would use the error text as
// the data key (opt-out: Options.DataKeyErrorBodies).
package bigdlkms

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ppml-project/ppml/api/httputil"
	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/kms"
	"github.com/ppml-project/ppml/metrics"
)

// Options configures the handler.
type Options struct {
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	// DataKeyErrorBodies answers a failing GET /dataKey with a status and
	// an error text, as upstream does, instead of resetting the connection.
	// Dangerous: BigDL's client encrypts data with that text as the key.
	DataKeyErrorBodies bool
}

// Handler serves the BigDL KMS routes.
type Handler struct {
	svc *kms.Service
	o   Options
}

// New returns the handler.
func New(svc *kms.Service, o Options) *Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Handler{svc: svc, o: o}
}

// Routes lists the path prefixes this handler owns (after slash collapsing).
var Routes = []string{"/user/", "/primaryKey/", "/dataKey/", "/rootKey/"}

type reply struct {
	status int
	text   string
	err    error
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	path := httputil.CollapseSlashes(r.URL.EscapedPath())
	action, rep := h.serve(r, path)
	result := "ok"
	if rep.err != nil {
		result = fault.CodeOf(rep.err)
	}
	h.o.Metrics.Observe("bigdl-kms", action, result, time.Since(start))
	json := strings.Contains(r.Header.Get("Accept"), "application/json")
	if rep.err != nil && action == "GetDataKey" && !json && !h.o.DataKeyErrorBodies {
		// Abort: HTTP/1 closes the connection, HTTP/2 resets the stream;
		// either way the client gets an I/O error, never a body. A client
		// asking for JSON reads statuses and gets the error answer.
		h.o.Logger.Info("BigDL GET /dataKey failed: connection reset instead of an error text (BigDL clients take any body for the key)", "error", rep.err.Error())
		panic(http.ErrAbortHandler)
	}
	if rep.err != nil {
		rep.status, rep.text = httputil.StatusOf(rep.err), rep.err.Error()
		httputil.SetRetryAfter(w.Header(), rep.err)
	}
	if json {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.status)
		if rep.err != nil {
			writeJSON(w, map[string]any{"error": map[string]string{"code": fault.CodeOf(rep.err), "message": rep.text}})
		} else {
			writeJSON(w, map[string]any{"result": rep.text})
		}
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.WriteHeader(rep.status)
	io.WriteString(w, rep.text)
}

func writeJSON(w io.Writer, v any) { httputil.EncodeJSON(w, v) }

func ok(text string) reply { return reply{status: http.StatusOK, text: text} }

func fail(err error) reply { return reply{err: err} }

func usage(kind fault.Kind, code, msg string) error {
	return &fault.Error{Kind: kind, Code: code, Msg: msg}
}

// Banner is the answer to GET /.
const Banner = "welcome to bigdl-key-management-server (ppml)\n\n" +
	"POST /user/{userName}?token=            create a user (admin credential needed)\n" +
	"POST /primaryKey/{name}?user=&token=    create a primary key\n" +
	"POST /dataKey/{name}?primaryKeyName=&user=&token=   create a data key\n" +
	"GET  /dataKey/{name}?primaryKeyName=&user=&token=   read a data key\n" +
	"GET  /rootKey/rotate                    rotate the root key (admin)\n" +
	"PUT  /rootKey/recover                   submit a root key share (admin)\n"

func (h *Handler) serve(r *http.Request, path string) (string, reply) {
	ctx := r.Context()
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return "invalid", fail(usage(fault.Invalid, "bad_query", "the query string is malformed: "+err.Error()+"\n please send parameters like: ?user=<u>&token=<t>"))
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if path == "/" || path == "" {
		return "Banner", ok(Banner)
	}
	name := ""
	if len(segs) == 2 {
		name, err = url.PathUnescape(segs[1])
		if err != nil {
			return "invalid", fail(usage(fault.Invalid, "bad_path", "the name in the path is not valid percent-encoding"))
		}
	}
	if len(segs) != 2 || name == "" {
		return "unknown", fail(usage(fault.NotFound, "unknown_route", fmt.Sprintf("no route for %s %s\n please use one of the routes listed by GET /", r.Method, path)))
	}
	caller := kms.Caller{API: "bigdl-kms", Remote: r.RemoteAddr}
	auth := func() error {
		user, token := q.Get("user"), q.Get("token")
		if user == "" || token == "" {
			return usage(fault.Unauthenticated, "missing_credentials", "user and token are required\n please add them like: ?user=<userName>&token=<userToken>")
		}
		if err := h.svc.AuthenticateBigDLUser(ctx, user, token); err != nil {
			return err
		}
		caller.ID = kms.BigDLOwner(user)
		return nil
	}
	switch {
	case segs[0] == "user" && r.Method == http.MethodPost:
		if err := h.svc.CheckEnrollment(r.Context(), httputil.BearerToken(r)); err != nil {
			return "CreateUser", fail(err)
		}
		token := q.Get("token")
		if token == "" {
			return "CreateUser", fail(usage(fault.Invalid, "missing_token", "token is required\n please create a user like: POST /user/<userName>?token=<userToken>"))
		}
		if err := h.svc.CreateBigDLUser(ctx, caller, name, token); err != nil {
			return "CreateUser", fail(err)
		}
		return "CreateUser", ok(fmt.Sprintf("user [%s] is created successfully!", name))
	case segs[0] == "primaryKey" && r.Method == http.MethodPost:
		if err := auth(); err != nil {
			return "CreatePrimaryKey", fail(err)
		}
		if _, err := h.svc.CreateNamedPrimaryKey(ctx, caller, name); err != nil {
			return "CreatePrimaryKey", fail(err)
		}
		return "CreatePrimaryKey", ok(fmt.Sprintf("generate primaryKey [%s] successfully!", name))
	case segs[0] == "dataKey" && (r.Method == http.MethodPost || r.Method == http.MethodGet):
		action := "CreateDataKey"
		if r.Method == http.MethodGet {
			action = "GetDataKey"
		}
		if err := auth(); err != nil {
			return action, fail(err)
		}
		pk := q.Get("primaryKeyName")
		if pk == "" {
			return action, fail(usage(fault.Invalid, "missing_primary_key", "primaryKeyName is required\n please add it like: ?primaryKeyName=<name>&user=<u>&token=<t>"))
		}
		if r.Method == http.MethodPost {
			if err := h.svc.CreateNamedDataKey(ctx, caller, pk, name); err != nil {
				return action, fail(err)
			}
			return action, ok(fmt.Sprintf("dataKey [%s] is generated successfully!", name))
		}
		text, err := h.svc.GetNamedDataKey(ctx, caller, pk, name)
		if err != nil {
			return action, fail(err)
		}
		return action, ok(text)
	case segs[0] == "rootKey" && name == "rotate" && r.Method == http.MethodGet:
		if err := h.svc.CheckAdmin(r.Context(), httputil.BearerToken(r)); err != nil {
			return "RotateRootKey", fail(err)
		}
		shares, term, err := h.svc.RotateOrInitRootKey(ctx, kms.Caller{ID: "admin", API: "bigdl-kms", Remote: r.RemoteAddr})
		if err != nil {
			return "RotateRootKey", fail(err)
		}
		if shares == nil {
			return "RotateRootKey", ok(fmt.Sprintf("root key is rotated! new wraps use root key term %d; the secrets are unchanged (ppml operator rekey replaces them).", term))
		}
		parts := make([]string, len(shares))
		for i, s := range shares {
			b, _ := json.Marshal(struct {
				Index   int    `json:"index"`
				Content string `json:"content"`
			}{int(s.X), base64.StdEncoding.EncodeToString(s.Y)})
			parts[i] = string(b)
		}
		return "RotateRootKey", ok("root key is rotated! \nplease save secrets: {" + strings.Join(parts, ",") + "}need 3 of 5 secrets to recover root key.")
	case segs[0] == "rootKey" && name == "recover" && r.Method == http.MethodPut:
		if err := h.svc.CheckAdmin(r.Context(), httputil.BearerToken(r)); err != nil {
			return "RecoverRootKey", fail(err)
		}
		body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, 64<<10))
		if err != nil {
			return "RecoverRootKey", fail(usage(fault.Invalid, "bad_share", "could not read the share body (over 64 KiB?)"))
		}
		index, content, err := ParseShare(body)
		if err != nil {
			return "RecoverRootKey", fail(err)
		}
		held, unsealed, err := h.svc.SubmitShare(ctx, kms.Caller{ID: "admin", API: "bigdl-kms", Remote: r.RemoteAddr}, index, content)
		if err != nil {
			return "RecoverRootKey", fail(err)
		}
		if unsealed {
			return "RecoverRootKey", ok("recover root key and initialize server successfully!")
		}
		return "RecoverRootKey", ok(fmt.Sprintf("received %d/3 shares", held))
	}
	return "unknown", fail(usage(fault.NotFound, "unknown_route", fmt.Sprintf("no route for %s %s\n please use one of the routes listed by GET /", r.Method, path)))
}

// ParseShare decodes one share {"index": n, "content": "<base64>"}.
func ParseShare(body []byte) (int, []byte, error) {
	var s struct {
		Index   *int   `json:"index"`
		Content string `json:"content"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(string(body))), &s); err != nil || s.Index == nil || s.Content == "" {
		return 0, nil, usage(fault.Invalid, "bad_share", "the body must be one share as JSON: {\"index\": <1..5>, \"content\": \"<base64>\"}")
	}
	content, err := base64.StdEncoding.DecodeString(s.Content)
	if err != nil {
		return 0, nil, usage(fault.Invalid, "bad_share", "the share content is not standard base64")
	}
	return *s.Index, content, nil
}
