package hooks

import (
	"fmt"
	"strings"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/ast"
)

// concatName is the function every `..` of a script is compiled into.
//
// gopher-lua's OP_CONCAT joins all its operands in one VM instruction with
// no size check: `s..s..s` over 64 strings of 16 MiB builds 1 GiB before
// the watchdog or the deadline can look. The loader therefore rewrites each
// concatenation chain `a..b..c` into `__acquit_concat(a, b, c)`, a Go
// function that bounds the result (MaxString) before allocating it, exactly
// as string.rep, table.concat and string.format are bounded. A chunk that
// concatenates starts with `local __acquit_concat = __acquit_concat`, so the
// function is an upvalue the script cannot replace, and the name is
// reserved: a script using it as an identifier does not load.
const concatName = "__acquit_concat"

// rewriteConcat replaces the `..` operators of chunk by calls of
// concatName. It fails when the script uses the reserved name.
func rewriteConcat(chunk []ast.Stmt) ([]ast.Stmt, *Diagnostic) {
	r := &concatRewriter{}
	r.stmts(chunk)
	if r.err != nil {
		return nil, r.err
	}
	if !r.used {
		return chunk, nil
	}
	decl := &ast.LocalAssignStmt{Names: []string{concatName}, Exprs: []ast.Expr{&ast.IdentExpr{Value: concatName}}}
	decl.SetLine(1)
	decl.SetLastLine(1)
	return append([]ast.Stmt{decl}, chunk...), nil
}

type concatRewriter struct {
	used bool
	err  *Diagnostic
}

func (r *concatRewriter) name(n string, line int) {
	if n == concatName && r.err == nil {
		r.err = &Diagnostic{Line: line, Message: fmt.Sprintf("the name %s is reserved by acquit", concatName)}
	}
}

func (r *concatRewriter) stmts(list []ast.Stmt) {
	for _, st := range list {
		r.stmt(st)
	}
}

func (r *concatRewriter) exprs(list []ast.Expr) {
	for i := range list {
		list[i] = r.expr(list[i])
	}
}

func (r *concatRewriter) stmt(st ast.Stmt) {
	switch s := st.(type) {
	case *ast.AssignStmt:
		r.exprs(s.Lhs)
		r.exprs(s.Rhs)
	case *ast.LocalAssignStmt:
		for _, n := range s.Names {
			r.name(n, s.Line())
		}
		r.exprs(s.Exprs)
	case *ast.FuncCallStmt:
		s.Expr = r.expr(s.Expr)
	case *ast.DoBlockStmt:
		r.stmts(s.Stmts)
	case *ast.WhileStmt:
		s.Condition = r.expr(s.Condition)
		r.stmts(s.Stmts)
	case *ast.RepeatStmt:
		r.stmts(s.Stmts)
		s.Condition = r.expr(s.Condition)
	case *ast.IfStmt:
		s.Condition = r.expr(s.Condition)
		r.stmts(s.Then)
		r.stmts(s.Else)
	case *ast.NumberForStmt:
		r.name(s.Name, s.Line())
		s.Init = r.expr(s.Init)
		s.Limit = r.expr(s.Limit)
		if s.Step != nil {
			s.Step = r.expr(s.Step)
		}
		r.stmts(s.Stmts)
	case *ast.GenericForStmt:
		for _, n := range s.Names {
			r.name(n, s.Line())
		}
		r.exprs(s.Exprs)
		r.stmts(s.Stmts)
	case *ast.FuncDefStmt:
		if s.Name != nil {
			s.Name.Func = r.expr(s.Name.Func)
			if s.Name.Receiver != nil {
				s.Name.Receiver = r.expr(s.Name.Receiver)
			}
		}
		r.function(s.Func)
	case *ast.ReturnStmt:
		r.exprs(s.Exprs)
	}
}

func (r *concatRewriter) function(f *ast.FunctionExpr) {
	if f == nil {
		return
	}
	if f.ParList != nil {
		for _, n := range f.ParList.Names {
			r.name(n, f.Line())
		}
	}
	r.stmts(f.Stmts)
}

func (r *concatRewriter) expr(e ast.Expr) ast.Expr {
	switch x := e.(type) {
	case nil:
		return nil
	case *ast.IdentExpr:
		r.name(x.Value, x.Line())
	case *ast.AttrGetExpr:
		x.Object = r.expr(x.Object)
		x.Key = r.expr(x.Key)
	case *ast.TableExpr:
		for _, f := range x.Fields {
			f.Key = r.expr(f.Key)
			f.Value = r.expr(f.Value)
		}
	case *ast.FuncCallExpr:
		x.Func = r.expr(x.Func)
		x.Receiver = r.expr(x.Receiver)
		r.exprs(x.Args)
	case *ast.LogicalOpExpr:
		x.Lhs = r.expr(x.Lhs)
		x.Rhs = r.expr(x.Rhs)
	case *ast.RelationalOpExpr:
		x.Lhs = r.expr(x.Lhs)
		x.Rhs = r.expr(x.Rhs)
	case *ast.ArithmeticOpExpr:
		x.Lhs = r.expr(x.Lhs)
		x.Rhs = r.expr(x.Rhs)
	case *ast.UnaryMinusOpExpr:
		x.Expr = r.expr(x.Expr)
	case *ast.UnaryNotOpExpr:
		x.Expr = r.expr(x.Expr)
	case *ast.UnaryLenOpExpr:
		x.Expr = r.expr(x.Expr)
	case *ast.FunctionExpr:
		r.function(x)
	case *ast.StringConcatOpExpr:
		// `a..b..c` parses as a..(b..c); the VM joins the whole right
		// chain in one instruction, and so does the call (same
		// operands, same order, same metamethod rules).
		var args []ast.Expr
		cur := ast.Expr(x)
		for {
			c, ok := cur.(*ast.StringConcatOpExpr)
			if !ok {
				args = append(args, r.expr(cur))
				break
			}
			args = append(args, r.expr(c.Lhs))
			cur = c.Rhs
		}
		r.used = true
		fn := &ast.IdentExpr{Value: concatName}
		fn.SetLine(x.Line())
		fn.SetLastLine(x.LastLine())
		// AdjustRet: one value, never compiled as a tail call (the
		// error position stays the caller's line).
		call := &ast.FuncCallExpr{Func: fn, Args: args, AdjustRet: true}
		call.SetLine(x.Line())
		call.SetLastLine(x.LastLine())
		return call
	}
	return e
}

// concat is `..` (see concatName): the operands are joined right to left
// as the VM does, runs of strings and numbers at once, other values through
// their __concat metamethod; a run whose result would exceed MaxString is
// refused before anything is allocated.
func (s *vm) concat(L *lua.LState) int {
	n := L.GetTop()
	if n == 0 {
		L.Push(lua.LString(""))
		return 1
	}
	max := s.e.opts.MaxString
	rhs := L.Get(n)
	for i := n - 1; i >= 1; {
		lhs := L.Get(i)
		if lua.LVCanConvToString(lhs) && lua.LVCanConvToString(rhs) {
			j := i
			for j > 1 && lua.LVCanConvToString(L.Get(j-1)) {
				j--
			}
			size := len(lua.LVAsString(rhs))
			for k := j; k <= i; k++ {
				size += len(lua.LVAsString(L.Get(k)))
				if size > max {
					s.cur.fail(L, ErrLimit, "concatenation (..): result of more than %d bytes exceeds the %d-byte string limit", size, max)
				}
			}
			var b strings.Builder
			b.Grow(size)
			for k := j; k <= i; k++ {
				b.WriteString(lua.LVAsString(L.Get(k)))
			}
			b.WriteString(lua.LVAsString(rhs))
			rhs = lua.LString(b.String())
			i = j - 1
			continue
		}
		op := L.GetMetaField(lhs, "__concat")
		if op == lua.LNil {
			op = L.GetMetaField(rhs, "__concat")
		}
		if op.Type() != lua.LTFunction {
			L.RaiseError("cannot perform concat operation between %s and %s", lhs.Type().String(), rhs.Type().String())
		}
		L.Push(op)
		L.Push(lhs)
		L.Push(rhs)
		L.Call(2, 1)
		rhs = L.Get(-1)
		L.Pop(1)
		i--
	}
	L.Push(rhs)
	return 1
}
