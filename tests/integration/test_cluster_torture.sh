#!/bin/bash
# The 30-second cluster torture of the default test run: 3 hosts, random
# work, kills and freezes, then the fsck, fsynced-data and grant-log
# checks of cluster_torture.sh. The 5-minute, 4-host run is `make torture`.
exec bash "$(dirname "$0")/cluster_torture.sh" 30 3
