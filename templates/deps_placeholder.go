package templates

// Keeps modules the renderers are being written against in go.mod while
// they are built in parallel; removed once each is imported for real.
import (
	_ "github.com/compose-spec/compose-go/v2/loader"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/spf13/cobra"
	_ "gopkg.in/yaml.v3"
)
