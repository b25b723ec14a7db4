package templates

import (
	"fmt"

	stackhcl "github.com/obcd/obcd/hcl"
)

// postgres_queries.go renders the postgres_exporter queries file whose metrics the replication rule reads.

// PostgresExporterQueriesPath is where compose mounts PathPostgresQueries
// in the postgres exporter (--extend.query-path, or
// PG_EXPORTER_EXTEND_QUERY_PATH).
const PostgresExporterQueriesPath = "/etc/postgres-exporter/queries.yaml"

// postgresExporterQuery is one entry of postgres_exporter 0.11's
// --extend.query-path file; each column becomes <name>_<column>.
type postgresExporterQuery struct {
	Query   string                              `yaml:"query"`
	Master  bool                                `yaml:"master"`
	Metrics []map[string]postgresExporterColumn `yaml:"metrics"`
}

type postgresExporterColumn struct {
	Usage       string `yaml:"usage"`
	Description string `yaml:"description"`
}

// replicationQuery gives pg_replication_lag (seconds) and
// pg_replication_lag_bytes per replica, read on the primary. Exporter
// 0.11 has no built-in lag metric.
const replicationQuery = "SELECT application_name," +
	" COALESCE(EXTRACT(EPOCH FROM replay_lag), 0)::float8 AS lag," +
	" COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::float8 AS lag_bytes" +
	" FROM pg_stat_replication"

func renderPostgresQueries(s *stackhcl.Stack) ([]Artifact, error) {
	if !hasExporter(s, stackhcl.ExporterPostgres) {
		return nil, nil
	}
	queries := map[string]postgresExporterQuery{
		"pg_replication": {
			Query:  replicationQuery,
			Master: true,
			Metrics: []map[string]postgresExporterColumn{
				{"application_name": {Usage: "LABEL", Description: "Replica's application_name"}},
				{"lag": {Usage: "GAUGE", Description: "Replay lag of the replica in seconds"}},
				{"lag_bytes": {Usage: "GAUGE", Description: "WAL bytes the replica has not replayed yet"}},
			},
		},
	}
	data, err := monitoringYAML(queries)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", PathPostgresQueries, err)
	}
	return []Artifact{{Path: PathPostgresQueries, Mode: ModePublic, Data: data}}, nil
}
