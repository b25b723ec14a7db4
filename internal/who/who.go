// Package who names the operator and the machine an obcd process runs
// as, for release records and lock holders.
package who

import (
	"os"
	"os/user"
)

// User is $USER, else the OS account name, else "unknown".
func User() string {
	if name := os.Getenv("USER"); name != "" {
		return name
	}
	if account, err := user.Current(); err == nil {
		return account.Username
	}
	return "unknown"
}

// Host is the host name, else "unknown".
func Host() string {
	if name, err := os.Hostname(); err == nil {
		return name
	}
	return "unknown"
}
