// Package e2e holds wsbridge's end-to-end suite: real clients through the
// real binary. noVNC (Debian's package and the current release from npm)
// runs in Debian's Chromium driven by playwright-core against TigerVNC's
// Xvnc; OpenSSH runs through `wsbridge connect`; Debian's websockify and
// a websockify-era base64 client (Python websockets) check interop both
// ways.
//
// The tests carry the build tag e2e and run with `make e2e` (which .ci/run
// calls). They install nothing: a missing program fails the test with the
// Debian package to install, and missing npm modules with the npm command
// to run. When a test fails, its logs (wsbridge, Xvnc, sshd, the browser's
// console) and a screenshot of the page are kept under e2e-artifacts/ at
// the repository's root, one folder per test.
package e2e
