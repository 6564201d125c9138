// Package archtest holds a test that enforces the direction of imports
// between wsbridge's packages (DESIGN.md section 3).
package archtest
