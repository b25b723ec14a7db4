#!/usr/bin/python3
"""Rewrites a compose file obcd rendered (the Compose Specification, as
compose-go writes it) into the dialect of docker-compose 1.29, the
Compose that Debian bookworm ships, so that the benchmark can run the
same stack with it. Only spelling changes; what runs is the same:

  - the top-level `name` goes (pass -p PROJECT instead);
  - env_file entries {path: F} become the string F;
  - depends_on entries lose `required` (1.29 treats every one as required);
  - long-syntax ports with host_ip become "HOST_IP:PUBLISHED:TARGET/PROTO";
  - `configs`, which 1.29 ignores outside a swarm, become read-only bind
    mounts of the same files at the same targets (what Compose v2 does).

  compose-v1.py IN.yml OUT.yml
"""
import sys

import yaml


def convert(doc):
    doc.pop("name", None)
    configs = doc.pop("configs", None) or {}
    for service in (doc.get("services") or {}).values():
        for ref in service.pop("configs", None) or []:
            source = configs[ref["source"]]["file"]
            service.setdefault("volumes", []).append(
                {"type": "bind", "source": source, "target": ref["target"], "read_only": True})
        env_files = service.get("env_file")
        if isinstance(env_files, list):
            service["env_file"] = [e["path"] if isinstance(e, dict) else e for e in env_files]
        depends = service.get("depends_on")
        if isinstance(depends, dict):
            for dep in depends.values():
                if isinstance(dep, dict):
                    dep.pop("required", None)
        ports = service.get("ports")
        if isinstance(ports, list):
            short = []
            for p in ports:
                if isinstance(p, dict):
                    spec = f'{p["published"]}:{p["target"]}/{p.get("protocol", "tcp")}'
                    if p.get("host_ip"):
                        spec = f'{p["host_ip"]}:{spec}'
                    short.append(spec)
                else:
                    short.append(p)
            service["ports"] = short
    return doc


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 64
    with open(argv[1]) as f:
        doc = yaml.safe_load(f)
    with open(argv[2], "w") as f:
        yaml.safe_dump(convert(doc), f, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
