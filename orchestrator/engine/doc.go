// Package engine is obcd's way to a Docker engine: dialing it, the narrow
// API obcd calls, what a service should run (ServiceSpec and the hash
// that forces a recreate), the compose-compatible labels and names, and
// one primitive for each plan step.
package engine
