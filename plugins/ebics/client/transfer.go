package client

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/zlib"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/acquit/acquit/internal/painfile"
	"github.com/acquit/acquit/plugins/ebics/protocol"
)

// UploadSpec asks for one file to be sent.
type UploadSpec struct {
	ID       string // stable id of the file (the daemon's TransmissionID)
	Function string // business function in the profile ("sct", "sdd")
	Path     string
	Progress func(sent, total int64)
	// SHA256 (hex) and Size, when set, are what the caller registered:
	// a file that differs is refused (*FileMismatchError) before anything
	// is sent, checked in the same read that spools it; a resumed upload
	// recorded for another file is refused too.
	SHA256 string
	Size   int64
	// Identifiers the caller already read from the file ("msg_id",
	// "nb_of_txs", "ctrl_sum"), returned in UploadResult.Details; when
	// empty, the client reads them from the file's group header.
	Identifiers map[string]string
}

// UploadResult is what the bank recorded.
type UploadResult struct {
	OrderID       string            `json:"order_id"`
	TransactionID string            `json:"transaction_id"`
	Segments      int               `json:"segments"`
	Resumed       bool              `json:"resumed"`
	ReturnCode    string            `json:"return_code"`
	ReturnText    string            `json:"return_text"`
	FileSHA256    string            `json:"file_sha256"`
	Details       map[string]string `json:"details"`
}

// uploadState is persisted after every step.
type uploadState struct {
	Function      string        `json:"function"`
	FileSHA256    string        `json:"file_sha256"`
	Spool         string        `json:"spool"`
	SpoolSize     int64         `json:"spool_size"`
	SegmentSize   int           `json:"segment_size"`
	NumSegments   int           `json:"num_segments"`
	OrderID       string        `json:"order_id,omitempty"`
	WrappedKey    []byte        `json:"wrapped_key"`
	SignatureData []byte        `json:"signature_data"`
	DataDigest    []byte        `json:"data_digest"`
	TransactionID string        `json:"transaction_id,omitempty"`
	SegmentsDone  int           `json:"segments_done"`
	Done          bool          `json:"done"`
	Result        *UploadResult `json:"result,omitempty"`
	Restarts      int           `json:"restarts"`
	// LastSent is set (and persisted) before the last segment goes out:
	// from then on the bank may have completed the order.
	LastSent bool `json:"last_sent,omitempty"`
	// details are stored once under their own key, not rewritten after
	// each segment. The transactions themselves are not kept: the daemon
	// reads the file's EndToEndIds and amounts at submission, and a list
	// of 200,000 of them would not fit a state value (1 MiB).
	details map[string]string
}

// Upload sends one file, crash-safe: the state is persisted after each
// step under the spec's ID, so calling Upload again after a crash resumes
// the same EBICS transaction (or, if the bank dropped it, starts it again
// with the same OrderID in 2.5, which the bank refuses as a duplicate if
// the order exists) and never creates a second order for one file.
func (c *Client) Upload(ctx context.Context, spec UploadSpec) (*UploadResult, error) {
	if spec.ID == "" {
		return nil, fmt.Errorf("ebics upload: empty id")
	}
	fn, ok := c.bank.Profile.Functions[spec.Function]
	if !ok {
		return nil, fmt.Errorf("ebics upload %s: function %q not in profile %s", spec.ID, spec.Function, c.bank.Profile.Name)
	}
	if _, err := c.LoadBankKeys(ctx); err != nil {
		return nil, fmt.Errorf("ebics upload %s: %w", spec.ID, err)
	}
	lock, _ := c.uploads.LoadOrStore(spec.ID, &sync.Mutex{})
	lock.(*sync.Mutex).Lock()
	defer lock.(*sync.Mutex).Unlock()
	key := c.stateKey("upload", spec.ID)
	var st uploadState
	found, err := c.getJSON(ctx, key, &st)
	if err != nil {
		return nil, err
	}
	resumed := found
	if found && spec.SHA256 != "" && st.FileSHA256 != "" && !strings.EqualFold(spec.SHA256, st.FileSHA256) {
		return nil, fmt.Errorf("ebics upload %s: %w", spec.ID, &FileMismatchError{"sha256_mismatch",
			fmt.Sprintf("upload %s was recorded for file %s, not %s", spec.ID, st.FileSHA256, spec.SHA256)})
	}
	if found && st.Done {
		r := *st.Result
		r.Resumed = true
		return c.withDetails(ctx, key, &r)
	}
	if !found || st.Spool == "" || !fileExists(st.Spool) {
		if found && st.TransactionID != "" && st.LastSent && !c.bank.Profile.SendsOrderID() {
			// The spool vanished after the last segment went out (a crash
			// before the bank's answer was recorded, then a work_dir
			// emptied, e.g. a /tmp cleared at boot): the bank may hold the
			// complete order under an OrderID it assigned and we never
			// heard. A new transaction would be a second order for the
			// same file, so the upload ends here, as when the bank forgets
			// a transaction whose last segment was sent; the
			// acknowledgements (HAC, PSR by MsgId) tell what happened,
			// and the daemon's deadline raises the alarm if none comes.
			c.log.Warn().Str("id", spec.ID).Str("tx", st.TransactionID).
				Msg("ebics upload: spool gone after the last segment was sent; not sending the file again")
			return c.finish(ctx, key, &st, &protocol.Response{TechCode: ReturnSpoolLost,
				ReportText: "spool lost after the last segment was sent, the bank's answer unknown: the order may exist; check the HAC/PSR before sending again"})
		}
		if found && st.TransactionID != "" {
			// The spool vanished mid-transaction. It is made again below
			// with a new transaction key, which the bank's transaction
			// (begun with the old one) cannot take: that transaction is
			// left to expire and a new one starts.
			if st.LastSent {
				// 2.5 with the client's OrderID: the same one, counted as
				// a restart, so that a bank that completed the order
				// refuses it (091115) and the upload ends there.
				st.Restarts++
			} else {
				// The last segment never went out: the bank has no order
				// for this file, and a new OrderID (the client's next, or
				// the bank's) cannot collide with the open transaction,
				// whatever the bank does with the OrderIDs of those.
				st.OrderID = ""
			}
			st.TransactionID, st.SegmentsDone, st.LastSent = "", 0, false
		}
		if err := c.prepare(ctx, spec, fn, &st); err != nil {
			return nil, fmt.Errorf("ebics upload %s: %w", spec.ID, err)
		}
		if err := c.putJSON(ctx, key+"/details", st.details); err != nil {
			return nil, err
		}
		if err := c.putJSON(ctx, key, st); err != nil {
			return nil, err
		}
	}
	for attempt := 0; ; attempt++ {
		res, err := c.runUpload(ctx, spec, fn, key, &st)
		if err == nil {
			res.Resumed = resumed
			return res, nil
		}
		// The bank forgot the transaction (timeout, or never saw the init):
		// start it again from the spool, same OrderID.
		// When the bank assigns the OrderID (EBICS 3.0, or 2.5 with
		// client_order_id: false), a restarted upload cannot be refused as a
		// duplicate the way 2.5's reused client OrderID is.
		// If the last segment may have reached the bank before it forgot the
		// transaction, the order may exist: stop rather than risk a second
		// one; the acknowledgements (HAC, PSR by MsgId) tell what happened,
		// and the daemon's deadline raises the alarm if nothing comes.
		if protocol.HasCode(err, protocol.CodeTxUnknownTxID) && !c.bank.Profile.SendsOrderID() && st.LastSent {
			c.log.Warn().Str("id", spec.ID).Str("tx", st.TransactionID).
				Msg("ebics upload: the bank forgot a transaction whose last segment was sent; not sending the file again")
			return c.finish(ctx, key, &st, &protocol.Response{TechCode: protocol.CodeTxUnknownTxID,
				ReportText: "transaction unknown after its last segment was sent: the order may exist; check the HAC/PSR before sending again"})
		}
		if protocol.HasCode(err, protocol.CodeTxUnknownTxID) && attempt < 2 {
			c.log.Warn().Str("id", spec.ID).Str("tx", st.TransactionID).Msg("ebics upload: bank dropped the transaction, restarting it")
			st.TransactionID, st.SegmentsDone, st.LastSent = "", 0, false
			st.Restarts++
			if err := c.putJSON(ctx, key, st); err != nil {
				return nil, err
			}
			continue
		}
		return nil, fmt.Errorf("ebics upload %s: %w", spec.ID, err)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// ReturnSpoolLost is the ReturnCode of an upload whose spool vanished
// after its last segment was sent, before the bank's answer was recorded,
// with an OrderID the bank assigns: not an EBICS code (the bank's answer
// is unknown), and the file is not sent again.
const ReturnSpoolLost = "spool_lost"

// FileMismatchError refuses a file that is not the one the caller
// registered (SHA-256 or size differ), found before anything is sent.
type FileMismatchError struct {
	Code   string // "sha256_mismatch" or "size_mismatch"
	Detail string
}

// Error implements error.
func (e *FileMismatchError) Error() string { return e.Code + ": " + e.Detail }

// prepare reads the file ONCE: each block goes to the SHA-256 of the file,
// the ES digest and deflate -> E002 -> base64 into a spool file; only a
// buffer of each stage is held in memory (with several deflate workers, a
// few 1 MiB blocks: pzlib.go). The file's identifiers come from
// the caller (the daemon read them at submission), else from the group
// header alone (a few kilobytes). A file whose hash or size differ from
// the caller's is refused before the spool is kept, so before anything is
// sent.
func (c *Client) prepare(ctx context.Context, spec UploadSpec, fn Function, st *uploadState) error {
	f, err := os.Open(spec.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	st.details = map[string]string{}
	if len(spec.Identifiers) > 0 {
		for _, k := range []string{"msg_id", "nb_of_txs", "ctrl_sum"} {
			if v := spec.Identifiers[k]; v != "" {
				st.details[k] = v
			}
		}
	} else if info, err := painfile.ReadHeader(io.LimitReader(f, 1<<20)); err == nil {
		st.details["msg_id"], st.details["nb_of_txs"], st.details["ctrl_sum"] = info.MsgID, info.NbOfTxs, info.CtrlSum
	} else {
		c.log.Warn().Err(err).Str("id", spec.ID).Msg("ebics upload: no readable pain group header; no identifiers recorded")
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	dir := c.o.WorkDir
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "acquit-ebics")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	idh := sha256.Sum256([]byte(c.bank.Name + "/" + spec.ID))
	spool := filepath.Join(dir, hex.EncodeToString(idh[:12])+".b64")
	out, err := os.OpenFile(spool+".tmp", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	esh := protocol.NewESHash(c.bank.Profile.StripCRLF())
	tkey := protocol.NewTransactionKey()
	bw := bufio.NewWriterSize(out, 256<<10)
	b64 := base64.NewEncoder(base64.StdEncoding, bw)
	enc, _ := protocol.NewE002Writer(b64, tkey)
	var zw io.Closer
	var size int64
	if workers := c.deflateWorkers(); workers > 1 {
		// Deflate in blocks on several cores (pzlib.go); this goroutine
		// reads the file and hashes each block as it is read, while the
		// workers compress the blocks before it.
		pz, perr := newParallelZlib(enc, zlib.DefaultCompression, workers)
		if err = perr; err == nil {
			zw = pz
			size, err = pz.ReadFrom(io.TeeReader(f, io.MultiWriter(h, esh)))
		}
	} else {
		z, _ := zlib.NewWriterLevel(enc, zlib.DefaultCompression)
		zw = z
		buf := make([]byte, 256<<10)
		size, err = io.CopyBuffer(io.MultiWriter(h, esh, z), struct{ io.Reader }{f}, buf)
	}
	if zw == nil {
		zw = io.NopCloser(nil)
	} else if err != nil {
		zw.Close() // stops the parallel deflate's goroutines
	}
	for _, cl := range []func() error{zw.Close, enc.Close, b64.Close, bw.Flush, out.Sync} {
		if err == nil {
			err = cl()
		}
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	sum := hex.EncodeToString(h.Sum(nil))
	switch {
	case err != nil:
		err = fmt.Errorf("spool: %w", err)
	case spec.SHA256 != "" && !strings.EqualFold(spec.SHA256, sum):
		err = &FileMismatchError{"sha256_mismatch", fmt.Sprintf("file %s has SHA-256 %s, the caller registered %s", spec.Path, sum, spec.SHA256)}
	case spec.Size > 0 && spec.Size != size:
		err = &FileMismatchError{"size_mismatch", fmt.Sprintf("file %s has %d bytes, the caller registered %d", spec.Path, size, spec.Size)}
	}
	if err != nil {
		os.Remove(spool + ".tmp")
		return err
	}
	// file_sha256 is the file's own hash; the ES signs (and H005's
	// DataDigest carries) the order data digest, which leaves CR, LF and
	// Ctrl-Z out unless the profile says otherwise.
	digest := esh.Sum(nil)
	st.Function = spec.Function
	st.FileSHA256 = sum
	st.DataDigest = digest
	st.details["file_sha256"] = st.FileSHA256
	// ES over the document digest.
	sig, err := protocol.SignES(c.bank.Profile.SignatureVersion, c.keys.Signature.Private, digest)
	if err != nil {
		return err
	}
	sigData, err := protocol.EncryptE002(tkey, protocol.Deflate(protocol.UserSignatureData(c.version, c.bank.Profile.SignatureVersion, sig, c.bank.PartnerID, c.bank.UserID)))
	if err != nil {
		return err
	}
	wrapped, err := protocol.WrapKey(c.bankKeys().Enc.Key, tkey)
	if err != nil {
		return err
	}
	if err := os.Rename(spool+".tmp", spool); err != nil {
		return err
	}
	fi, err := os.Stat(spool)
	if err != nil {
		return err
	}
	seg := c.bank.Profile.SegmentSize
	st.Spool, st.SpoolSize, st.SegmentSize = spool, fi.Size(), seg
	st.NumSegments = int((fi.Size() + int64(seg) - 1) / int64(seg))
	st.WrappedKey, st.SignatureData = wrapped, sigData
	if c.bank.Profile.SendsOrderID() && st.OrderID == "" {
		n, err := c.host.NextSequence(ctx, "ebics/"+c.bank.HostID+"/"+c.bank.PartnerID+"/orderid")
		if err != nil {
			return fmt.Errorf("order id: %w", err)
		}
		st.OrderID = OrderIDFor(n)
	}
	return nil
}

func (c *Client) runUpload(ctx context.Context, spec UploadSpec, fn Function, key string, st *uploadState) (*UploadResult, error) {
	if st.TransactionID == "" {
		r := c.base(protocol.KindRequest, fn.OrderType)
		r.OrderID = st.OrderID
		r.OrderAttrib = c.orderAttribute(false)
		r.Params = fn.Params()
		r.BankAuthHash, r.BankEncHash = c.bankKeys().Auth.Digest(c.version), c.bankKeys().Enc.Digest(c.version)
		r.NumSegments = st.NumSegments
		r.EncKeyHash = r.BankEncHash
		r.TransactionKey, r.SignatureData = st.WrappedKey, st.SignatureData
		r.DataDigest, r.DigestVersion = st.DataDigest, c.bank.Profile.SignatureVersion
		resp, err := c.retry(ctx, "upload init", func() (*protocol.Response, error) {
			r.Nonce, r.Timestamp = protocol.NewNonce(), time.Now().UTC()
			return c.exchange(ctx, fn.OrderType+" init", r)
		})
		if protocol.HasCode(err, protocol.CodeOrderIDExists) && st.Restarts > 0 {
			// Our earlier attempt reached the bank under this OrderID. Sending
			// the file again under a new OrderID could create a second order,
			// so the upload ends here with code 091115: the HAC/PTK for this
			// OrderID tells whether the order was completed.
			return c.finish(ctx, key, st, &protocol.Response{TechCode: protocol.CodeOrderIDExists, OrderID: st.OrderID,
				ReportText: "order ID already known to the bank after a restart: check the HAC/PTK of this order"})
		}
		if err != nil {
			return nil, err
		}
		if resp.TransactionID == "" {
			return nil, fmt.Errorf("init response without TransactionID")
		}
		st.TransactionID = resp.TransactionID
		if resp.OrderID != "" {
			st.OrderID = resp.OrderID
		}
		if err := c.putJSON(ctx, key, st); err != nil {
			return nil, err
		}
	}
	sf, err := os.Open(st.Spool)
	if err != nil {
		return nil, err
	}
	defer sf.Close()
	var last *protocol.Response
	syncs := 0
	for n := st.SegmentsDone + 1; n <= st.NumSegments; n++ {
		off := int64(n-1) * int64(st.SegmentSize)
		m := min(int64(st.SegmentSize), st.SpoolSize-off)
		if m <= 0 {
			return nil, fmt.Errorf("segment %d: spool %s holds %d bytes", n, st.Spool, st.SpoolSize)
		}
		if n == st.NumSegments && !st.LastSent {
			st.LastSent = true
			if err := c.putJSON(ctx, key, st); err != nil {
				return nil, err
			}
		}
		// The envelope is built and signed once per segment (the transfer
		// phase carries no nonce, so a retry sends the same bytes); the
		// segment goes from the spool into the request body.
		r := &protocol.Request{Version: c.version, Kind: protocol.KindRequest, HostID: c.bank.HostID, TransactionID: st.TransactionID,
			Phase: protocol.PhaseTransfer, SegmentNumber: n, LastSegment: n == st.NumSegments}
		prefix, suffix, err := r.MarshalEnvelope(c.keys.Auth.Private)
		if err != nil {
			return nil, fmt.Errorf("segment %d: %w", n, err)
		}
		body := func() io.Reader {
			return io.MultiReader(bytes.NewReader(prefix), io.NewSectionReader(sf, off, m), bytes.NewReader(suffix))
		}
		size := int64(len(prefix)) + m + int64(len(suffix))
		resp, err := c.retry(ctx, "upload segment "+strconv.Itoa(n), func() (*protocol.Response, error) {
			return c.exchangeBody(ctx, fn.OrderType+" transfer", body, size)
		})
		if protocol.HasCode(err, protocol.CodeTxRecoverySync) && resp != nil {
			if syncs++; syncs > 10 {
				return nil, fmt.Errorf("segment %d: the bank asked to resynchronise %d times: %w", n, syncs, err)
			}
			// The bank names the last segment it has: continue after it.
			c.log.Warn().Int("bank_has", resp.SegmentNumber).Int("sent", n).Msg("ebics upload: recovery sync")
			st.SegmentsDone = min(resp.SegmentNumber, st.NumSegments-1)
			if err := c.putJSON(ctx, key, st); err != nil {
				return nil, err
			}
			n = st.SegmentsDone
			continue
		}
		if err != nil {
			return nil, err
		}
		if resp.TransactionID != "" && resp.TransactionID != st.TransactionID {
			return nil, fmt.Errorf("segment %d: answer for transaction %s, want %s", n, resp.TransactionID, st.TransactionID)
		}
		st.SegmentsDone = n
		if err := c.putJSON(ctx, key, st); err != nil {
			return nil, err
		}
		if spec.Progress != nil {
			spec.Progress(min(int64(n)*int64(st.SegmentSize), st.SpoolSize), st.SpoolSize)
		}
		last = resp
	}
	if last == nil {
		// All segments were sent before a crash but the final answer was
		// lost: send the last segment again, the bank answers again.
		st.SegmentsDone = st.NumSegments - 1
		return c.runUpload(ctx, spec, fn, key, st)
	}
	return c.finish(ctx, key, st, last)
}

func (c *Client) finish(ctx context.Context, key string, st *uploadState, last *protocol.Response) (*UploadResult, error) {
	if last.OrderID != "" {
		st.OrderID = last.OrderID
	}
	res := &UploadResult{OrderID: st.OrderID, TransactionID: st.TransactionID, Segments: st.NumSegments,
		ReturnCode: cmp.Or(last.TechCode, protocol.CodeOK), ReturnText: last.ReportText, FileSHA256: st.FileSHA256}
	st.Done, st.Result = true, res
	if err := c.putJSON(ctx, key, st); err != nil {
		return nil, err
	}
	out := *res
	if _, err := c.withDetails(ctx, key, &out); err != nil {
		return nil, err
	}
	res = &out
	os.Remove(st.Spool)
	c.log.Info().Str("order", res.OrderID).Str("tx", res.TransactionID).Int("segments", res.Segments).Msg("ebics upload done")
	return res, nil
}

// withDetails loads the stored payment details into r.Details.
func (c *Client) withDetails(ctx context.Context, key string, r *UploadResult) (*UploadResult, error) {
	if _, err := c.getJSON(ctx, key+"/details", &r.Details); err != nil {
		return nil, err
	}
	if r.Details == nil {
		r.Details = map[string]string{}
	}
	r.Details["order_id"] = r.OrderID
	r.Details["transaction_id"] = r.TransactionID
	return r, nil
}

// retry repeats fn on transport errors and 061099 (internal error).
func (c *Client) retry(ctx context.Context, op string, fn func() (*protocol.Response, error)) (*protocol.Response, error) {
	for i := 0; ; i++ {
		resp, err := fn()
		var ne *NetError
		transient := errors.As(err, &ne) || protocol.HasCode(err, protocol.CodeInternalError)
		if !transient || i >= c.o.Retries {
			return resp, err
		}
		c.log.Warn().Err(err).Str("op", op).Int("attempt", i+1).Msg("ebics: retrying")
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(c.o.RetryWait):
		}
	}
}

// ---------------------------------------------------------------------------
// download

// Downloaded is one downloaded document, not yet confirmed.
type Downloaded struct {
	TransactionID string
	OrderID       string
	Function      string
	Format        string
	Content       []byte // Download only
	Path          string // DownloadFile only: the file written
	Size          int64  // decompressed length
	Segments      int
	SHA256        string
}

// TooLargeError is the failure of a download whose document decompresses
// to more than the limit: decoding stopped there and nothing is kept; the
// remaining segments were fetched (and dropped), so the transaction is
// ready for the Receipt the caller sends after reporting the document.
type TooLargeError struct {
	TransactionID, OrderID, Function, OrderType string
	Segments                                    int
	Max                                         int64 // the limit, in decompressed bytes
}

// Error implements error.
func (e *TooLargeError) Error() string {
	return fmt.Sprintf("ebics download %s (%s, transaction %s): the document is over %d bytes", e.Function, e.OrderType, e.TransactionID, e.Max)
}

// Unwrap makes a TooLargeError match protocol.ErrInflateLimit.
func (e *TooLargeError) Unwrap() error { return protocol.ErrInflateLimit }

// Download fetches one document of a business function (nil, nil when the
// bank has nothing: 090005) into memory, up to Options.MaxDownload: for
// small documents (bank parameters, HAA, HTD). The bank considers it
// delivered only after Receipt(ok=true).
func (c *Client) Download(ctx context.Context, function string, from, to time.Time) (*Downloaded, error) {
	fn, ok := c.bank.Profile.Functions[function]
	if !ok {
		return nil, fmt.Errorf("ebics download: function %q not in profile %s", function, c.bank.Profile.Name)
	}
	return c.downloadBytes(ctx, function, fn, from, to)
}

// DownloadFile is Download into a new file in dir, synced before it
// returns: each segment is decoded as it arrives (base64 -> E002 ->
// inflate) and written out, so memory does not grow with the document.
// More than max decompressed bytes (max <= 0: Options.MaxDownload) fail
// the download and remove the file; so does any other failure.
func (c *Client) DownloadFile(ctx context.Context, function string, from, to time.Time, dir string, max int64) (*Downloaded, error) {
	fn, ok := c.bank.Profile.Functions[function]
	if !ok {
		return nil, fmt.Errorf("ebics download: function %q not in profile %s", function, c.bank.Profile.Name)
	}
	if max <= 0 {
		max = c.o.MaxDownload
	}
	f, err := os.CreateTemp(dir, "ebics-"+function+"-*.doc")
	if err != nil {
		return nil, fmt.Errorf("ebics download %s: %w", function, err)
	}
	d, err := c.download(ctx, function, fn, from, to, f, max)
	if err == nil && d != nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || d == nil {
		os.Remove(f.Name())
		return nil, err
	}
	d.Path = f.Name()
	return d, nil
}

func (c *Client) downloadBytes(ctx context.Context, function string, fn Function, from, to time.Time) (*Downloaded, error) {
	var b bytes.Buffer
	d, err := c.download(ctx, function, fn, from, to, &b, c.o.MaxDownload)
	if d != nil {
		d.Content = b.Bytes()
	}
	return d, err
}

// download runs one download transaction, writing the decoded document to
// w as its segments arrive.
func (c *Client) download(ctx context.Context, function string, fn Function, from, to time.Time, w io.Writer, max int64) (*Downloaded, error) {
	if _, err := c.LoadBankKeys(ctx); err != nil {
		return nil, fmt.Errorf("ebics download %s: %w", function, err)
	}
	r := c.base(protocol.KindRequest, fn.OrderType)
	r.OrderAttrib = c.orderAttribute(true)
	r.Params = fn.Params()
	if !from.IsZero() && !to.IsZero() {
		r.Params.DateStart, r.Params.DateEnd = from.Format("2006-01-02"), to.Format("2006-01-02")
	}
	r.BankAuthHash, r.BankEncHash = c.bankKeys().Auth.Digest(c.version), c.bankKeys().Enc.Digest(c.version)
	resp, err := c.retry(ctx, "download init", func() (*protocol.Response, error) {
		r.Nonce, r.Timestamp = protocol.NewNonce(), time.Now().UTC()
		return c.exchange(ctx, fn.OrderType+" init", r)
	})
	if protocol.HasCode(err, protocol.CodeNoDownloadData) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ebics download %s: %w", function, err)
	}
	if resp.TransactionID == "" || resp.NumSegments < 1 || resp.NumSegments > 100000 || resp.TransactionKey == nil {
		return nil, fmt.Errorf("ebics download %s: init response lacks TransactionID/NumSegments/TransactionKey", function)
	}
	key, err := protocol.UnwrapKey(c.keys.Enc.Private, resp.TransactionKey)
	if err != nil {
		return nil, fmt.Errorf("ebics download %s: %w", function, err)
	}
	// The segments are decoded as one stream (they are cut in the base64
	// text, not in the binary data), each fetched when the decoder has
	// used the one before: one segment in memory at a time.
	segs := &segmentReader{cur: resp.OrderData, n: 1, total: resp.NumSegments, next: func(n int) (string, error) {
		tr := &protocol.Request{Version: c.version, Kind: protocol.KindRequest, HostID: c.bank.HostID, TransactionID: resp.TransactionID,
			Phase: protocol.PhaseTransfer, SegmentNumber: n, LastSegment: n == resp.NumSegments}
		sr, err := c.retry(ctx, "download segment", func() (*protocol.Response, error) { return c.exchange(ctx, fn.OrderType+" transfer", tr) })
		if err != nil {
			return "", fmt.Errorf("segment %d: %w", n, err)
		}
		if sr.SegmentNumber != n || sr.TransactionID != "" && sr.TransactionID != resp.TransactionID {
			return "", fmt.Errorf("got segment %d of %s, want %d", sr.SegmentNumber, sr.TransactionID, n)
		}
		return sr.OrderData, nil
	}}
	dec, err := protocol.NewOrderDataDecoder(segs, key, max)
	if err != nil {
		return nil, fmt.Errorf("ebics download %s: %w", function, err)
	}
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(w, h), dec)
	if err != nil {
		if segs.err != nil {
			err = segs.err
		} else if errors.Is(err, protocol.ErrInflateLimit) {
			// The receipt phase follows the last segment: fetch the rest
			// without decoding it (one segment in memory at a time), so
			// that the caller can send the receipt the bank expects.
			segs.cur = ""
			if _, derr := io.Copy(io.Discard, segs); derr != nil {
				return nil, fmt.Errorf("ebics download %s: over %d bytes, fetching the remaining segments: %w", function, max, derr)
			}
			return nil, &TooLargeError{TransactionID: resp.TransactionID, OrderID: resp.OrderID, Function: function,
				OrderType: fn.OrderType, Segments: resp.NumSegments, Max: max}
		}
		return nil, fmt.Errorf("ebics download %s: %w", function, err)
	}
	if segs.n != segs.total {
		return nil, fmt.Errorf("ebics download %s: the document ended at segment %d of %d", function, segs.n, segs.total)
	}
	format := fn.Format
	if fn.Container != "" {
		format = strings.ToLower(fn.Container) // e.g. "zip": the daemon unpacks
	}
	d := &Downloaded{TransactionID: resp.TransactionID, OrderID: resp.OrderID, Function: function, Format: format,
		Size: size, Segments: resp.NumSegments, SHA256: hex.EncodeToString(h.Sum(nil))}
	if err := c.putJSON(ctx, c.stateKey("download", d.TransactionID), map[string]string{"function": function, "sha256": d.SHA256}); err != nil {
		return nil, err
	}
	return d, nil
}

// segmentReader reads the order data of a download's segments in order,
// fetching segment n+1 (next) once segment n is used up.
type segmentReader struct {
	cur      string
	n, total int
	next     func(n int) (string, error)
	err      error // the fetch error, kept for the message
}

// Read implements io.Reader.
func (s *segmentReader) Read(p []byte) (int, error) {
	for s.cur == "" {
		if s.err != nil {
			return 0, s.err
		}
		if s.n >= s.total {
			return 0, io.EOF
		}
		d, err := s.next(s.n + 1)
		if err != nil {
			s.err = err
			return 0, err
		}
		s.n++
		s.cur = d
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	return n, nil
}

// Receipt sends the transfer receipt of a download: ok=true (code 0) once
// the document is stored durably, ok=false (code 1) to have it delivered
// again.
func (c *Client) Receipt(ctx context.Context, transactionID string, ok bool) error {
	if _, err := c.LoadBankKeys(ctx); err != nil {
		return err
	}
	r := &protocol.Request{Version: c.version, Kind: protocol.KindRequest, HostID: c.bank.HostID, TransactionID: transactionID,
		Phase: protocol.PhaseReceipt, HasReceipt: true}
	if !ok {
		r.ReceiptCode = 1
	}
	_, err := c.retry(ctx, "receipt", func() (*protocol.Response, error) { return c.exchange(ctx, "receipt", r) })
	if err != nil {
		return fmt.Errorf("ebics receipt %s: %w", transactionID, err)
	}
	return c.putJSON(ctx, c.stateKey("download", transactionID), map[string]string{"confirmed": strconv.FormatBool(ok)})
}

// HAA asks the bank which order types (2.5) or BTF services (3.0) it
// offers, and sends the receipt at once.
func (c *Client) HAA(ctx context.Context) ([]string, []protocol.OrderParams, error) {
	d, err := c.downloadBytes(ctx, "haa", Function{OrderType: "HAA"}, time.Time{}, time.Time{})
	if err != nil {
		return nil, nil, err
	}
	if d == nil {
		return nil, nil, fmt.Errorf("ebics HAA: bank sent no data")
	}
	if err := c.Receipt(ctx, d.TransactionID, true); err != nil {
		return nil, nil, err
	}
	ots, svcs, err := protocol.ParseHAA(d.Content)
	if err != nil {
		return nil, nil, fmt.Errorf("ebics HAA: %w", err)
	}
	return ots, svcs, nil
}

// PartnerData downloads HTD (this subscriber) or HKD (all subscribers of
// the partner): the orders offered and the permissions; the receipt is
// sent at once.
func (c *Client) PartnerData(ctx context.Context, orderType string) (*protocol.PartnerData, error) {
	if orderType != "HTD" && orderType != "HKD" {
		return nil, fmt.Errorf("ebics: %s is neither HTD nor HKD", orderType)
	}
	d, err := c.downloadBytes(ctx, strings.ToLower(orderType), Function{OrderType: orderType}, time.Time{}, time.Time{})
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, fmt.Errorf("ebics %s: bank sent no data", orderType)
	}
	if err := c.Receipt(ctx, d.TransactionID, true); err != nil {
		return nil, err
	}
	pd, err := protocol.ParsePartnerData(d.Content)
	if err != nil {
		return nil, fmt.Errorf("ebics %s: %w", orderType, err)
	}
	return pd, nil
}

// CheckProfile compares the profile with what the bank says: HTD (orders
// offered to the partner and the subscriber's permissions) when the bank
// supports it, else HAA. It returns the functions that will not work
// ("function:order (reason)").
func (c *Client) CheckProfile(ctx context.Context) ([]string, error) {
	pd, err := c.PartnerData(ctx, "HTD")
	if err == nil {
		return c.checkHTD(pd), nil
	}
	if !protocol.HasCode(err, protocol.CodeUnsupportedOrderType) && !protocol.HasCode(err, "091005") {
		return nil, err
	}
	c.log.Info().Msg("ebics: bank does not support HTD, checking the profile with HAA")
	return c.checkHAA(ctx)
}

func (c *Client) checkHTD(pd *protocol.PartnerData) []string {
	var missing []string
	for name, f := range c.bank.Profile.Functions {
		label := name + ":" + f.OrderType
		if f.OrderType == "BTU" || f.OrderType == "BTD" {
			label += " " + f.ServiceName + "/" + f.MsgName
		}
		offered := false
		for _, o := range pd.Orders {
			offered = offered || o.Matches(f.OrderType, f.Params(), f.FileFormat)
		}
		if !offered {
			missing = append(missing, label+" (not offered)")
			continue
		}
		permitted := false
		for _, u := range pd.Users {
			if u.UserID != c.bank.UserID && pd.Kind == "HKDResponseOrderData" {
				continue
			}
			for _, p := range u.Permission {
				permitted = permitted || p.OrderType == f.OrderType && (p.Service.ServiceName == "" || p.Service.ServiceName == f.ServiceName)
			}
		}
		if !permitted {
			missing = append(missing, label+" (not permitted)")
		}
	}
	sort.Strings(missing)
	return missing
}

func (c *Client) checkHAA(ctx context.Context) ([]string, error) {
	ots, svcs, err := c.HAA(ctx)
	if err != nil {
		return nil, err
	}
	if c.version == protocol.H004 {
		// HAA lists download order types; uploads are checked too when the
		// bank includes them (many do); HTD would be exact.
		return c.bank.Profile.CheckOrderTypes(ots), nil
	}
	var missing []string
	for name, f := range c.bank.Profile.Functions {
		if f.OrderType != "BTU" && f.OrderType != "BTD" {
			continue
		}
		found := false
		for _, s := range svcs {
			if s.ServiceName == f.ServiceName && s.MsgName == f.MsgName && (f.ServiceOption == "" || s.ServiceOption == "" || s.ServiceOption == f.ServiceOption) {
				found = true
			}
		}
		if !found {
			missing = append(missing, name+":"+f.ServiceName+"/"+f.MsgName)
		}
	}
	sort.Strings(missing)
	return missing, nil
}
