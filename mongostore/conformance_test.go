package mongostore_test

import (
	"testing"

	"github.com/mqttpersist/mqttpersist/persisttest"
)

func TestConformance(t *testing.T) {
	serverURL(t)
	persisttest.Run(t, harness(nil))
}
