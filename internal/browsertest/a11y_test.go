package browsertest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// CI installs the axe-core this package names.
func TestCIInstallsThisAxe(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "axe-core@"+AxeVersion) {
		t.Fatalf(".ci/run does not install axe-core@%s", AxeVersion)
	}
}
