package hooks

import "github.com/yuin/gopher-lua/ast"

// findRequires lists the calls require "literal" (or require("literal"))
// of a chunk, from its syntax tree: comments and strings that merely
// mention require are not calls.
func findRequires(chunk []ast.Stmt) []requireRef {
	var out []requireRef
	var stmts func([]ast.Stmt)
	var exprs func(...ast.Expr)
	exprs = func(es ...ast.Expr) {
		for _, e := range es {
			switch x := e.(type) {
			case *ast.FuncCallExpr:
				if id, ok := x.Func.(*ast.IdentExpr); ok && id.Value == "require" && x.Receiver == nil && len(x.Args) >= 1 {
					if s, ok := x.Args[0].(*ast.StringExpr); ok {
						out = append(out, requireRef{name: s.Value, line: x.Line()})
					}
				}
				exprs(x.Func, x.Receiver)
				exprs(x.Args...)
			case *ast.AttrGetExpr:
				exprs(x.Object, x.Key)
			case *ast.TableExpr:
				for _, f := range x.Fields {
					exprs(f.Key, f.Value)
				}
			case *ast.LogicalOpExpr:
				exprs(x.Lhs, x.Rhs)
			case *ast.RelationalOpExpr:
				exprs(x.Lhs, x.Rhs)
			case *ast.StringConcatOpExpr:
				exprs(x.Lhs, x.Rhs)
			case *ast.ArithmeticOpExpr:
				exprs(x.Lhs, x.Rhs)
			case *ast.UnaryMinusOpExpr:
				exprs(x.Expr)
			case *ast.UnaryNotOpExpr:
				exprs(x.Expr)
			case *ast.UnaryLenOpExpr:
				exprs(x.Expr)
			case *ast.FunctionExpr:
				stmts(x.Stmts)
			}
		}
	}
	stmts = func(ss []ast.Stmt) {
		for _, s := range ss {
			switch x := s.(type) {
			case *ast.AssignStmt:
				exprs(x.Lhs...)
				exprs(x.Rhs...)
			case *ast.LocalAssignStmt:
				exprs(x.Exprs...)
			case *ast.FuncCallStmt:
				exprs(x.Expr)
			case *ast.DoBlockStmt:
				stmts(x.Stmts)
			case *ast.WhileStmt:
				exprs(x.Condition)
				stmts(x.Stmts)
			case *ast.RepeatStmt:
				stmts(x.Stmts)
				exprs(x.Condition)
			case *ast.IfStmt:
				exprs(x.Condition)
				stmts(x.Then)
				stmts(x.Else)
			case *ast.NumberForStmt:
				exprs(x.Init, x.Limit, x.Step)
				stmts(x.Stmts)
			case *ast.GenericForStmt:
				exprs(x.Exprs...)
				stmts(x.Stmts)
			case *ast.FuncDefStmt:
				exprs(x.Func)
			case *ast.ReturnStmt:
				exprs(x.Exprs...)
			}
		}
	}
	stmts(chunk)
	return out
}
