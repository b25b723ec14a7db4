// Package secrets holds an environment's secret values: the 0600 dotenv
// file <state-dir>/<env>.secrets, overridden by OBCD_SECRET_* variables,
// and the generator of strong values for it.
package secrets
