package acks

import (
	"fmt"
	"io"
)

// Level says where an effective status comes from.
type Level string

// The levels of a pain.002.
const (
	LevelGroup  Level = "group"
	LevelPmtInf Level = "pmtinf"
	LevelTx     Level = "tx"
)

// Effective is the status that applies to one transaction once the group
// and PmtInf statuses above it are taken into account.
type Effective struct {
	Status  Status
	Level   Level    // where Status was decided
	Reasons []Reason // the reasons given at that level
}

// EffectiveStatus computes the status of tx: a rejection at group or PmtInf
// level applies to every transaction below it; the transaction's own
// rejection (with its more precise reasons) comes first; otherwise the most
// specific non-PART status wins (PART says nothing about one transaction).
// p may be nil (pain.002.001.02). The result is RJCT whenever any level is.
func EffectiveStatus(g *PSRGroup, p *PSRPmtInf, tx *PSRTx) Effective {
	if tx != nil && tx.TxSts == StatusRJCT {
		return Effective{StatusRJCT, LevelTx, tx.Reasons}
	}
	if p != nil && p.PmtInfSts == StatusRJCT {
		return Effective{StatusRJCT, LevelPmtInf, p.Reasons}
	}
	if g != nil && g.GrpSts == StatusRJCT {
		return Effective{StatusRJCT, LevelGroup, g.Reasons}
	}
	if tx != nil && tx.TxSts != StatusNone && tx.TxSts != StatusPART {
		return Effective{tx.TxSts, LevelTx, tx.Reasons}
	}
	if p != nil && p.PmtInfSts != StatusNone && p.PmtInfSts != StatusPART {
		return Effective{p.PmtInfSts, LevelPmtInf, p.Reasons}
	}
	if g != nil && g.GrpSts != StatusNone && g.GrpSts != StatusPART {
		return Effective{g.GrpSts, LevelGroup, g.Reasons}
	}
	return Effective{}
}

// PSRPmtInfReport is a PmtInf with its transactions, as collected by ReadPSR.
type PSRPmtInfReport struct {
	PSRPmtInf
	Txs []PSRTx
}

// PSRReport is a whole pain.002 in memory. Use it for ordinary reports;
// use ParsePSR with callbacks for large ones.
type PSRReport struct {
	Group   PSRGroup
	PmtInfs []PSRPmtInfReport
	Txs     []PSRTx // transactions outside any PmtInf (pain.002.001.02)
	Bytes   int64
}

// AllTxs returns every transaction with the PmtInf it belongs to (nil for
// .02 transactions).
func (r *PSRReport) AllTxs() []TxWithPmtInf {
	var out []TxWithPmtInf
	for i := range r.PmtInfs {
		for j := range r.PmtInfs[i].Txs {
			out = append(out, TxWithPmtInf{&r.PmtInfs[i].PSRPmtInf, &r.PmtInfs[i].Txs[j]})
		}
	}
	for j := range r.Txs {
		out = append(out, TxWithPmtInf{nil, &r.Txs[j]})
	}
	return out
}

// TxWithPmtInf pairs a transaction with its PmtInf (nil in .02).
type TxWithPmtInf struct {
	PmtInf *PSRPmtInf
	Tx     *PSRTx
}

// ReadPSR parses a pain.002 into memory, refusing more than
// Limits.MaxCollect transactions with ErrTooMany.
func ReadPSR(r io.Reader, lim Limits) (*PSRReport, error) {
	lim = lim.withDefaults()
	rep := &PSRReport{}
	var cur *PSRPmtInfReport
	n := 0
	h := PSRHandler{
		OnTx: func(g *PSRGroup, p *PSRPmtInf, tx *PSRTx) error {
			n++
			if n > lim.MaxCollect {
				return &ParseError{Kind: ErrTooMany, Format: "psr", Detail: fmt.Sprintf("more than %d transactions", lim.MaxCollect)}
			}
			if p == nil {
				rep.Txs = append(rep.Txs, *tx)
				return nil
			}
			if cur == nil || cur.Index != p.Index {
				rep.PmtInfs = append(rep.PmtInfs, PSRPmtInfReport{})
				cur = &rep.PmtInfs[len(rep.PmtInfs)-1]
				cur.Index = p.Index
			}
			cur.Txs = append(cur.Txs, *tx)
			return nil
		},
		OnPmtInf: func(g *PSRGroup, p *PSRPmtInf) error {
			if cur == nil || cur.Index != p.Index {
				rep.PmtInfs = append(rep.PmtInfs, PSRPmtInfReport{})
				cur = &rep.PmtInfs[len(rep.PmtInfs)-1]
			}
			cur.PSRPmtInf = *p
			cur = nil
			return nil
		},
	}
	sum, err := ParsePSR(r, lim, h)
	if err != nil {
		return nil, err
	}
	rep.Group = sum.Group
	rep.Bytes = sum.Bytes
	return rep, nil
}
