// Command obcd renders, validates and deploys a Django production stack
// from one HCL stack file.
package main

import "os"

func main() {
	os.Exit(Execute(os.Args[1:], os.Stdout, os.Stderr))
}
