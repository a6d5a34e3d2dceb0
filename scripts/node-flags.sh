# shellcheck shell=sh
# The flags node gets wherever it runs tsmigrate: sourced by setup.sh (the
# tsmigrate command), local-hosts.sh (the test hosts' command) and demo.sh; the
# same list is in src/cli/main.ts (its #! line) and bench/lib/node-flags.ts.
#
# --initial-old-space-size=256: a move streams gigabytes through short-lived
# Buffers, and V8 counts their memory against a heap limit derived from the
# live heap (~13 MB here), so it ran a full mark-compact every ~64 MB: 46 of
# them in the 2.8 s downtime of a 1 GiB move, ~0.8 s of CPU in the source's
# process alone on 2 cores shared with CRIU, sshd and the peer. With a 256 MB
# initial limit none runs during the downtime (young collections still free
# the Buffers). It cannot be set once node runs (v8.setFlagsFromString is too
# late) nor through NODE_OPTIONS, hence the command line.
TSM_NODE_FLAGS="--initial-old-space-size=256"
