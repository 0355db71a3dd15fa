#!/usr/bin/env bash
# End-to-end test of `skiff server` with stock kubectl.
#
# Starts the server on a temporary data directory and a free port on
# 127.0.0.1, joins hollow nodes to it (`skiff hollow-nodes`: Nodes with
# Leases and a fake agent that runs bound pods, kubemark-style), then drives
# it with kubectl using nothing but --kubeconfig (the admin kubeconfig the
# server writes), and checks what each command prints: exact strings or
# jsonpath values, not just exit codes. A failed check prints the command,
# the expected and the actual output, and the run goes on; the last line
# counts passes and failures, and the exit status is 1 if any check failed.
#
# Usage: SKIFF=bin/skiff test/e2e/run.sh      (make test-e2e does this)
#   SKIFF    the skiff binary (required)
#   KUBECTL  the kubectl binary (default: kubectl on PATH; when there is none,
#            one is built from test/e2e/kubectl, a module of its own)
#
# Nothing is checked that needs a real node agent (containers, probes,
# Service traffic): the hollow nodes only report pods Running and Ready.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
MANIFESTS=$HERE/manifests

: "${SKIFF:?set SKIFF to the skiff binary}"
SKIFF=$(cd "$(dirname "$SKIFF")" && pwd)/$(basename "$SKIFF")
[[ -x $SKIFF ]] || { echo "e2e: $SKIFF is not executable" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/skiff-e2e.XXXXXX")
DATA=$WORK/data
SERVER_LOG=$WORK/server.log
SERVER_PID=""
PORT=""
# The hollow nodes: three in one process, and one in a second process
# (another name prefix) that the script kills to simulate a dead node.
HOLLOW_LOG=$WORK/hollow.log
HOLLOW_PID=""
LOST_LOG=$WORK/lost.log
LOST_PID=""
ETCD_CLIENT_PORT=""
ETCD_PEER_PORT=""

cleanup() {
	local rc=$?
	stop_pid "$LOST_PID"
	stop_pid "$HOLLOW_PID"
	jobs -p | xargs -r kill 2>/dev/null || true
	stop_server
	if ((rc != 0)) && [[ -f $SERVER_LOG ]]; then
		echo "--- last 40 lines of the server log" >&2
		tail -n 40 "$SERVER_LOG" >&2 || true
		echo "--- last 10 lines of the hollow nodes' logs" >&2
		tail -n 10 "$HOLLOW_LOG" "$LOST_LOG" >&2 2>/dev/null || true
	fi
	rm -rf "$WORK"
	exit "$rc"
}

# stop_pid PID [SIGNAL]: stops a background process of this script and
# reaps it.
stop_pid() {
	[[ -n ${1:-} ]] || return 0
	kill "-${2:-TERM}" "$1" 2>/dev/null || true
	local deadline=$((SECONDS + 15))
	while kill -0 "$1" 2>/dev/null && ((SECONDS < deadline)); do
		sleep 0.2
	done
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" || true
} 2>/dev/null # (bash's "Killed" job report, made while polling, stays off the output)
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- kubectl

if [[ -z ${KUBECTL:-} ]]; then
	if command -v kubectl >/dev/null; then
		KUBECTL=$(command -v kubectl)
	else
		echo "e2e: no kubectl on PATH; building one from test/e2e/kubectl"
		kv=$(awk '$1 == "k8s.io/kubectl" { sub(/^v0\./, "v1.", $2); print $2 }' "$HERE/kubectl/go.mod")
		(cd "$HERE/kubectl" && go build -o "$ROOT/bin/e2e-kubectl" \
			-ldflags "-X k8s.io/component-base/version.gitVersion=$kv" .)
		KUBECTL=$ROOT/bin/e2e-kubectl
	fi
fi
echo "e2e: kubectl $("$KUBECTL" version --client 2>/dev/null | head -n 1)"

# kubectl keeps its discovery and HTTP caches, keyed by host:port, in the
# test's directory: a server that earlier used the same port must not leak
# its discovery into this run.
export KUBECACHEDIR=$WORK/kube-cache
# Sorted lists compare the same whatever the caller's locale.
export LC_ALL=C
unset KUBECTL_EXTERNAL_DIFF KUBECONFIG
KUBECONFIG_FILE=$DATA/kubeconfig

# ---------------------------------------------------------------- checks

PASSED=0
FAILED=0
STEP=""
CMD=""
OUT=""
ERR=""
RC=0

step() {
	STEP=$1
	echo "== $STEP (at ${SECONDS}s)"
}

# run CMD...: runs a command, keeping its stdout, stderr and exit status in
# OUT, ERR and RC. Commands are bounded by a timeout so that a hung request
# fails the check instead of the whole run.
run() {
	CMD=$*
	local errf=$WORK/stderr
	set +e
	OUT=$(timeout 60 "$@" 2>"$errf")
	RC=$?
	set -e
	ERR=$(cat "$errf")
}

# k ARGS...: kubectl with the admin kubeconfig and nothing else.
k() { run "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

pass() { PASSED=$((PASSED + 1)); }

indent() { sed 's/^/    | /'; }

# fail WHAT EXPECTED ACTUAL
fail() {
	FAILED=$((FAILED + 1))
	{
		echo "FAIL [$STEP] $1"
		echo "  command:  $CMD"
		echo "  expected:"
		indent <<<"$2"
		echo "  actual (exit $RC):"
		indent <<<"$3"
		if [[ -n $ERR && $3 != "$ERR" ]]; then
			echo "  stderr:"
			indent <<<"$ERR"
		fi
	} >&2
}

# squeeze: one space between columns, no trailing blanks; kubectl aligns
# tables with a variable number of spaces and tabs.
squeeze() { tr -s ' \t' '  ' | sed -e 's/^ //' -e 's/ $//'; }

# ages: replaces AGE column values (5s, 2m10s, 3h) with AGE, drops the
# repeat counts of events ("10s (x2 over 12s)" becomes "AGE") and reads
# "(lasts 5s)" (or "(lasts <invalid>)" while the deletion timestamp is in
# the future) as "(lasts AGE)".
ages() {
	sed -E -e 's/(^| )[0-9]+[smhdy]([0-9]+[smh])?( |$)/\1AGE\3/g' \
		-e 's/ \(x[0-9]+ over [0-9]+[smhdy]([0-9]+[smh])?\)//g' \
		-e 's/\(lasts [^)]*\)/(lasts AGE)/g'
}

# service_rows: a squeezed Service table with IP for the CLUSTER-IP column
# and NODEPORT for node ports.
service_rows() {
	awk 'NR > 1 { $3 = "IP" } { print }' | sed -E 's#:3[0-9]{4}/TCP#:NODEPORT/TCP#g'
}

# pod_states: lines "NODE PHASE [DELETION-TIMESTAMP]" (squeezed) become
# "NODE PHASE live|terminating", with hollow-node-0..2 as hollow-node-N,
# sorted.
pod_states() {
	sed -E -e 's/^hollow-node-[0-9]+ /hollow-node-N /' -e 's/^([^ ]+ [^ ]+)$/\1 live/' \
		-e 's/^([^ ]+ [^ ]+) [0-9]{4}-[0-9TZ:-]+$/\1 terminating/' | sort
}

# expect_ok: the last command succeeded.
expect_ok() {
	if ((RC == 0)); then pass; else fail "exit status" "0" "$ERR"; fi
}

# expect_out WANT: the last command succeeded and printed exactly WANT.
expect_out() {
	if ((RC == 0)) && [[ $OUT == "$1" ]]; then pass; else fail "output" "$1" "$OUT"; fi
}

# expect_table WANT: like expect_out after squeeze and ages.
expect_table() {
	local got
	got=$(squeeze <<<"$OUT" | ages)
	if ((RC == 0)) && [[ $got == "$1" ]]; then pass; else fail "table" "$1" "$got"; fi
}

# expect_lines LINE...: the last command exited with WANT_RC (default 0)
# and each LINE is a whole line of its squeezed output.
expect_lines() {
	local got line missing=()
	got=$(squeeze <<<"$OUT")
	for line in "$@"; do
		grep -qxF -- "$line" <<<"$got" || missing+=("$line")
	done
	if ((RC == ${WANT_RC:-0} && ${#missing[@]} == 0)); then
		pass
	else
		fail "lines" "$(printf '%s\n' "$@")" "$got"
	fi
}

# expect_prefix PREFIX: the last command succeeded and a line of its
# squeezed output starts with PREFIX.
expect_prefix() {
	local line
	if ((RC == 0)); then
		while IFS= read -r line; do
			if [[ $line == "$1"* ]]; then
				pass
				return
			fi
		done < <(squeeze <<<"$OUT")
	fi
	fail "a line starting with" "$1" "$OUT"
}

# expect_match REGEX...: the last command succeeded and each extended
# REGEX matches a whole line of its output.
expect_match() {
	local re missing=()
	for re in "$@"; do
		grep -qxE -- "$re" <<<"$OUT" || missing+=("$re")
	done
	if ((RC == 0 && ${#missing[@]} == 0)); then
		pass
	else
		fail "lines matching" "$(printf '%s\n' "$@")" "$OUT"
	fi
}

# expect_contains SUBSTRING...: the last command succeeded and its output
# holds every SUBSTRING.
expect_contains() {
	local s missing=()
	for s in "$@"; do
		grep -qF -- "$s" <<<"$OUT" || missing+=("$s")
	done
	if ((RC == 0 && ${#missing[@]} == 0)); then
		pass
	else
		fail "output holding" "$(printf '%s\n' "$@")" "$OUT"
	fi
}

# expect_fail STATUS SUBSTRING...: the last command exited with STATUS and
# its stderr holds every SUBSTRING.
expect_fail() {
	local want=$1 s missing=()
	shift
	for s in "$@"; do
		grep -qF -- "$s" <<<"$ERR" || missing+=("$s")
	done
	if ((RC == want && ${#missing[@]} == 0)); then
		pass
	else
		fail "exit $want and stderr with" "$(printf '%s\n' "$@")" "$ERR"
	fi
}

# expect_value WHAT WANT GOT: a value computed by the script.
expect_value() {
	if [[ $3 == "$2" ]]; then pass; else fail "$1" "$2" "$3"; fi
}

# wait_for_file_line FILE LINE SECONDS: waits until a background command
# has written LINE to FILE.
wait_for_file_line() {
	local file=$1 want=$2 deadline=$((SECONDS + $3))
	while ((SECONDS < deadline)); do
		grep -qxF -- "$want" "$file" 2>/dev/null && return 0
		sleep 0.2
	done
	return 1
}

# eventually SECONDS WANT ARGS...: runs kubectl ARGS until its squeezed
# output, passed through $FILTER (a command; default cat), is WANT, then
# passes; fails with the last output once SECONDS have passed. For what the
# controllers do in their own time; the bound keeps a missing reaction from
# hanging the run.
eventually() {
	local secs=$1 want=$2 got deadline
	shift 2
	deadline=$((SECONDS + secs))
	while :; do
		k "$@"
		got=$(squeeze <<<"$OUT" | ${FILTER:-cat}) || true
		if ((RC == 0)) && [[ $got == "$want" ]]; then
			pass
			return
		fi
		((SECONDS < deadline)) || break
		sleep 0.5
	done
	fail "within ${secs}s" "$want" "$got"
}

# eventually_lines SECONDS LINE... -- ARGS...: runs kubectl ARGS until each
# LINE is a whole line of its output (squeezed, ages replaced), as
# expect_lines does, or SECONDS pass; for events, which their recorders
# write in their own time.
eventually_lines() {
	local secs=$1 deadline line lines=() missing=()
	shift
	while (($# > 0)) && [[ $1 != -- ]]; do
		lines+=("$1")
		shift
	done
	shift
	deadline=$((SECONDS + secs))
	while :; do
		k "$@"
		OUT=$(squeeze <<<"$OUT" | ages)
		missing=()
		for line in "${lines[@]}"; do
			grep -qxF -- "$line" <<<"$OUT" || missing+=("$line")
		done
		if ((RC == 0 && ${#missing[@]} == 0)); then
			pass
			return
		fi
		((SECONDS < deadline)) || break
		sleep 0.5
	done
	fail "lines within ${secs}s" "$(printf '%s\n' "${lines[@]}")" "$OUT"
}

# rolled_out DEPLOYMENT: kubectl rollout status reports the rollout done.
rolled_out() {
	k rollout status "deployment/$1" -n e2e --timeout=60s
	if ((RC == 0)) && [[ $(tail -n 1 <<<"$OUT") == "deployment \"$1\" successfully rolled out" ]]; then
		pass
	else
		fail "rollout status" "deployment \"$1\" successfully rolled out" "$OUT"
	fi
}

# roll_pods_run IMAGE: both pods of the roll Deployment run IMAGE, once
# the rollout has replaced them.
roll_pods_run() {
	eventually 30 "$1 $1" get pods -n e2e -l app=roll -o 'jsonpath={.items[*].spec.containers[0].image}'
}

# roll_replicasets LINES: the roll Deployment's ReplicaSets, as sorted
# "revision:image=replicas" lines, are LINES.
roll_replicasets() {
	k get replicasets -n e2e -l app=roll -o 'jsonpath={range .items[*]}{.metadata.annotations.deployment\.kubernetes\.io/revision}:{.spec.template.spec.containers[0].image}={.spec.replicas} {end}'
	OUT=$(sorted "$OUT")
	expect_out "$1"
}

# sorted WORDS...: the words, one a line, sorted.
sorted() { tr -s ' ,' '\n\n' <<<"$*" | { grep . || true; } | sort; }

# ---------------------------------------------------------------- server

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port [EXCLUDED...]: a port nothing listens on, not among EXCLUDED.
pick_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 40000))
		[[ " $* " == *" $p "* ]] && continue
		port_busy "$p" || { echo "$p"; return 0; }
	done
	echo "e2e: no free port found" >&2
	return 1
}

start_server() {
	# The embedded etcd gets free ports too: its defaults (2379, 2380)
	# would collide with other servers on this machine.
	# LoadBalancer addresses from a pool of three (TEST-NET-1), and node
	# lifecycle timings for a lab: a node whose Lease goes 8 s without a
	# renewal is Unknown, and its pods leave 2 s after the NoExecute taint
	# (no eviction rate limit). The hollow nodes renew every second.
	"$SKIFF" server --data-dir "$DATA" --secure-port "$PORT" --bind-address 127.0.0.1 \
		--etcd-client-url "http://127.0.0.1:$ETCD_CLIENT_PORT" \
		--etcd-peer-url "http://127.0.0.1:$ETCD_PEER_PORT" \
		--lb-pool 192.0.2.10-192.0.2.12 \
		--node-monitor-period 1s --node-monitor-grace-period 8s --node-eviction-rate -1 \
		--default-not-ready-toleration-seconds 2 --default-unreachable-toleration-seconds 2 \
		>>"$SERVER_LOG" 2>&1 &
	SERVER_PID=$!
	local deadline=$((SECONDS + 60))
	while ((SECONDS < deadline)); do
		if ! kill -0 "$SERVER_PID" 2>/dev/null; then
			wait "$SERVER_PID" || true
			SERVER_PID=""
			return 1
		fi
		if [[ -f $KUBECONFIG_FILE ]] &&
			[[ $(timeout 10 "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get --raw /readyz 2>/dev/null) == ok ]]; then
			return 0
		fi
		sleep 0.3
	done
	echo "e2e: server not ready after 60s" >&2
	return 1
}

# stop_server: SIGTERM, then SIGKILL after 30 s. SERVER_STOPPED says how
# it went: "clean" (exit status 0 after SIGTERM), "exit N" or "killed".
stop_server() {
	[[ -n $SERVER_PID ]] || return 0
	kill -TERM "$SERVER_PID" 2>/dev/null || true
	local deadline=$((SECONDS + 30)) rc=0
	while kill -0 "$SERVER_PID" 2>/dev/null && ((SECONDS < deadline)); do
		sleep 0.2
	done
	SERVER_STOPPED=clean
	if kill -KILL "$SERVER_PID" 2>/dev/null; then
		SERVER_STOPPED=killed
	fi
	wait "$SERVER_PID" 2>/dev/null || rc=$?
	if [[ $SERVER_STOPPED == clean ]] && ((rc != 0)); then
		SERVER_STOPPED="exit $rc"
	fi
	SERVER_PID=""
}

# start_hollow NODES PREFIX LOG: starts `skiff hollow-nodes` in the
# background; its pid is in HOLLOW_STARTED.
start_hollow() {
	"$SKIFF" hollow-nodes --kubeconfig "$KUBECONFIG_FILE" --nodes "$1" --prefix "$2" \
		--lease-duration 4s >>"$3" 2>&1 &
	HOLLOW_STARTED=$!
}

mkdir -p "$DATA"
step "start skiff server"
started=""
for _ in 1 2 3; do
	PORT=$(pick_port)
	ETCD_CLIENT_PORT=$(pick_port "$PORT")
	ETCD_PEER_PORT=$(pick_port "$PORT" "$ETCD_CLIENT_PORT")
	rm -rf "$DATA" && mkdir -p "$DATA"
	if start_server; then
		started=yes
		break
	fi
	stop_server
	echo "e2e: server did not start on port $PORT; retrying" >&2
	tail -n 5 "$SERVER_LOG" >&2 || true
done
[[ -n $started ]] || { echo "e2e: skiff server did not start" >&2; exit 1; }
echo "server on https://127.0.0.1:$PORT (pid $SERVER_PID)"

step "hollow nodes join"
# One process after the other: a process gives its nodes pod CIDRs and
# addresses that no registered node holds.
start_hollow 3 hollow-node- "$HOLLOW_LOG"
HOLLOW_PID=$HOLLOW_STARTED
eventually 60 "hollow-node-0 hollow-node-1 hollow-node-2" get nodes -o 'jsonpath={.items[*].metadata.name}'
start_hollow 1 lost-node- "$LOST_LOG"
LOST_PID=$HOLLOW_STARTED
eventually 60 "True True True True" get nodes -o 'jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}'
k get nodes
expect_table "NAME STATUS ROLES AGE VERSION
hollow-node-0 Ready <none> AGE v1.37.2-skiff-hollow
hollow-node-1 Ready <none> AGE v1.37.2-skiff-hollow
hollow-node-2 Ready <none> AGE v1.37.2-skiff-hollow
lost-node-0 Ready <none> AGE v1.37.2-skiff-hollow"
k get nodes -o 'jsonpath={range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address} {.metadata.labels.topology\.kubernetes\.io/zone}{"\n"}{end}'
expect_out "hollow-node-0 10.64.0.0/24 100.64.0.1 zone-a
hollow-node-1 10.64.1.0/24 100.64.0.2 zone-b
hollow-node-2 10.64.2.0/24 100.64.0.3 zone-c
lost-node-0 10.64.3.0/24 100.64.0.4 zone-a"
k get leases -n kube-node-lease -o 'jsonpath={range .items[*]}{.metadata.name}={.spec.holderIdentity}/{.spec.leaseDurationSeconds} {end}'
expect_out "hollow-node-0=hollow-node-0/4 hollow-node-1=hollow-node-1/4 hollow-node-2=hollow-node-2/4 lost-node-0=lost-node-0/4 "
# lost-node-0 takes no pods until the step that kills it.
k cordon lost-node-0
expect_out "node/lost-node-0 cordoned"
k get node lost-node-0
expect_table "NAME STATUS ROLES AGE VERSION
lost-node-0 Ready,SchedulingDisabled <none> AGE v1.37.2-skiff-hollow"

# ---------------------------------------------------------------- steps

step "kubeconfig and authentication"
expect_value "kubeconfig mode" "600" "$(stat -c %a "$KUBECONFIG_FILE")"
k config view -o 'jsonpath={.current-context} {.clusters[0].cluster.server}'
expect_out "skiff https://127.0.0.1:$PORT"
k version
expect_match 'Server Version: v1\.[0-9]+\.[0-9]+.*'
# Clients with a wrong token, or a user name and password (basic auth, which
# Skiff does not accept), get 401. (A kubeconfig user with no credentials
# at all makes kubectl prompt for a user name instead of sending a request.)
CA_DATA=$("$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" config view --raw -o 'jsonpath={.clusters[0].cluster.certificate-authority-data}' || true)
for who in basic-auth bad-token; do
	user="{username: admin, password: admin}"
	[[ $who == bad-token ]] && user="{token: not-the-token}"
	cat >"$WORK/$who.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: skiff
  cluster: {server: "https://127.0.0.1:$PORT", certificate-authority-data: $CA_DATA}
users:
- name: $who
  user: $user
contexts:
- name: skiff
  context: {cluster: skiff, user: $who}
current-context: skiff
EOF
	run "$KUBECTL" --kubeconfig "$WORK/$who.kubeconfig" get namespaces
	expect_fail 1 "error: You must be logged in to the server ("
done

step "system namespaces and the kubernetes Service"
k get namespace default kube-system -o 'jsonpath={range .items[*]}{.metadata.name}={.status.phase} {end}'
expect_out "default=Active kube-system=Active "
# The first address of the Service range. (Its endpoints would name the
# server's address, but a loopback address, as here, may not be an
# endpoint.)
k get service kubernetes -n default -o 'jsonpath={.spec.clusterIP} {.spec.ports[0].name} {.spec.ports[0].port}'
expect_out "10.96.0.1 https 443"
k cluster-info
expect_contains "Kubernetes control plane is running at https://127.0.0.1:$PORT"
k get --raw /livez
expect_out "ok"

step "apply -f a multi-document manifest"
k apply -f "$MANIFESTS/app.yaml"
expect_out "namespace/e2e created
configmap/web-config created
secret/web-secret created
deployment.apps/web created
service/web created"

# The server labels namespaces with their name and adds the finalizer
# the namespace controller removes.
k get namespace e2e -o 'jsonpath={.metadata.labels} {.spec.finalizers}'
expect_out '{"kubernetes.io/metadata.name":"e2e","team":"web"} ["kubernetes"]'
# The Deployment controller makes a ReplicaSet, the scheduler places its
# pods on the hollow nodes, their agent reports them Running and Ready.
rolled_out web
WEB_RS=$("$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get replicasets -n e2e -l app=web -o 'jsonpath={.items[*].metadata.name}' || true)

step "apply the same manifest again"
k apply -f "$MANIFESTS/app.yaml"
# A Secret written with stringData is re-sent on every apply (the live
# object holds data instead), so kubectl may report it configured.
expect_lines "namespace/e2e unchanged" "configmap/web-config unchanged" \
	"deployment.apps/web unchanged" "service/web unchanged"
expect_match 'secret/web-secret (unchanged|configured)'

step "get (default table)"
k get configmap web-config -n e2e
expect_table "NAME DATA AGE
web-config 2 AGE"
k get namespace e2e
expect_table "NAME STATUS AGE
e2e Active AGE"

step "get -o wide"
k get deployment web -n e2e -o wide
expect_table "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR
web 2/2 2 2 AGE web nginx:1.27 app=web"
k get replicaset -n e2e -o wide
expect_table "NAME DESIRED CURRENT READY AGE CONTAINERS IMAGES SELECTOR
$WEB_RS 2 2 2 AGE web nginx:1.27 app=web,pod-template-hash=${WEB_RS#web-}"
# Each pod runs on a hollow node with an address from that node's
# podCIDR (hollow-node-N has 10.64.N.0/24).
k get pods -n e2e -o wide
OUT=$(squeeze <<<"$OUT" | ages)
expect_value "pod wide header" "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES" "$(head -n 1 <<<"$OUT")"
expect_value "pods Running on hollow nodes with IPs from their podCIDRs" "2 of 2" \
	"$(grep -cxE "$WEB_RS-[a-z0-9]{5} 1/1 Running 0 AGE 10\.64\.([0-2])\.[0-9]+ hollow-node-\1 <none> <none>" <<<"$OUT") of $(($(grep -c . <<<"$OUT") - 1))"
k get service web -n e2e -o wide
expect_value "service wide header" "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE SELECTOR" \
	"$(head -n 1 <<<"$OUT" | squeeze)"
expect_value "service wide row" "web ClusterIP IP <none> 80/TCP AGE app=web" \
	"$(sed -n 2p <<<"$OUT" | squeeze | ages | sed -E 's/ ([0-9]{1,3}\.){3}[0-9]{1,3} / IP /')"

step "get -o yaml"
k get configmap web-config -n e2e -o yaml
OUT=$(sed -E -e 's/^(  creationTimestamp: ).*/\1TIME/' -e 's/^(  resourceVersion: ).*/\1RV/' -e 's/^(  uid: ).*/\1UID/' <<<"$OUT")
expect_out 'apiVersion: v1
data:
  greeting: hello
  mode: production
kind: ConfigMap
metadata:
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: |
      {"apiVersion":"v1","data":{"greeting":"hello","mode":"production"},"kind":"ConfigMap","metadata":{"annotations":{},"name":"web-config","namespace":"e2e"}}
  creationTimestamp: TIME
  name: web-config
  namespace: e2e
  resourceVersion: RV
  uid: UID'

step "get -o jsonpath"
k get deployment web -n e2e -o 'jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.metadata.generation} {.spec.strategy.type} {.spec.template.spec.containers[0].ports[0].protocol}'
expect_out "2 nginx:1.27 1 RollingUpdate TCP"
# stringData is folded into data by the server.
k get secret web-secret -n e2e -o 'jsonpath={.type} {.data.password}'
expect_out "Opaque czNjcjN0"
k get service web -n e2e -o 'jsonpath={.spec.type} {.spec.sessionAffinity} {.spec.ports[0].protocol} {.spec.ports[0].targetPort}'
expect_out "ClusterIP None TCP 80"

step "get -l"
k get deployments,services -n e2e -l app=web -o name
expect_out "deployment.apps/web
service/web"
k get deployments,services -n e2e -l 'tier in (frontend)' -o name
expect_out "deployment.apps/web"
k get deployments -n e2e -l app=nothing
expect_out ""
expect_value "no match message" "No resources found in e2e namespace." "$ERR"

step "get -A"
k get configmaps -A
expect_value "header" "NAMESPACE NAME DATA AGE" "$(head -n 1 <<<"$OUT" | squeeze)"
expect_value "row" "e2e web-config 2 AGE" "$(grep -E '^e2e +web-config ' <<<"$OUT" | squeeze | ages)"
k get deployments -A -o 'jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{"\n"}{end}'
expect_out "e2e/web"
# Lists in pages of one object (limit and continue).
k get namespaces --chunk-size=1 -o name
expect_lines "namespace/default" "namespace/e2e" "namespace/kube-system"
expect_value "pages hold every namespace once" "$(sort -u <<<"$OUT" | grep -c .)" "$(grep -c . <<<"$OUT")"

step "get --field-selector"
k get configmaps -A --field-selector metadata.name=web-config -o name
expect_out "configmap/web-config"
k get namespaces --field-selector metadata.name=e2e -o name
expect_out "namespace/e2e"
k get configmaps -n e2e --field-selector metadata.name!=web-config,metadata.name!=kube-root-ca.crt -o name
expect_out ""
# kubectl describe finds an object's events with these selectors.
k get events -n e2e --field-selector involvedObject.kind=Deployment,involvedObject.name=web
expect_ok
k get configmaps -n e2e --field-selector spec.nothing=x
expect_fail 1 "Error from server (BadRequest)" "spec.nothing"

step "get all (categories)"
k get all -n e2e -o name
OUT=$(sed -E "s#^pod/$WEB_RS-[a-z0-9]{5}\$#pod/$WEB_RS-POD#" <<<"$OUT")
expect_out "pod/$WEB_RS-POD
pod/$WEB_RS-POD
service/web
deployment.apps/web
replicaset.apps/$WEB_RS"
# The pods belong to the ReplicaSet, the ReplicaSet to the Deployment.
k get pods,replicasets -n e2e -o 'jsonpath={range .items[*]}{.kind}:{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}/{.metadata.ownerReferences[0].controller}{"\n"}{end}'
expect_out "Pod:ReplicaSet/$WEB_RS/true
Pod:ReplicaSet/$WEB_RS/true
ReplicaSet:Deployment/web/true"

step "run a pod, expose a NodePort Service"
k run solo -n e2e --image=nginx:1.27 --labels=app=solo
expect_out "pod/solo created"
k wait pod/solo -n e2e --for=condition=Ready --timeout=60s
expect_out "pod/solo condition met"
k get pod solo -n e2e -o wide
OUT=$(squeeze <<<"$OUT" | ages)
expect_value "pod wide header" "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES" "$(head -n 1 <<<"$OUT")"
expect_match "solo 1/1 Running 0 AGE 10\.64\.([0-2])\.[0-9]+ hollow-node-\1 <none> <none>"
SOLO_NODE=$("$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get pod solo -n e2e -o 'jsonpath={.spec.nodeName}' || true)
SOLO_IP=$("$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get pod solo -n e2e -o 'jsonpath={.status.podIP}' || true)
SOLO_NODE_IP=$("$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get node "$SOLO_NODE" -o 'jsonpath={.status.addresses[?(@.type=="InternalIP")].address}' || true)
k get pod solo -n e2e -o 'jsonpath={.spec.restartPolicy} {.spec.dnsPolicy} {.spec.containers[0].imagePullPolicy} {.spec.containers[0].terminationMessagePath} {.spec.schedulerName} {.status.phase} {.status.qosClass}'
expect_out "Always ClusterFirst IfNotPresent /dev/termination-log default-scheduler Running BestEffort"
k get pod solo -n e2e -o 'jsonpath={range .status.conditions[*]}{.type}={.status} {end}'
OUT=$(sorted "$OUT")
expect_out "ContainersReady=True
Initialized=True
PodScheduled=True
Ready=True"
# The DefaultTolerationSeconds defaults: 300 s unless the server is told
# otherwise, as here.
k get pod solo -n e2e -o 'jsonpath={range .spec.tolerations[*]}{.key}={.tolerationSeconds} {end}'
expect_out "node.kubernetes.io/not-ready=2 node.kubernetes.io/unreachable=2 "
# The scheduler's event.
eventually_lines 30 "Node: $SOLO_NODE/$SOLO_NODE_IP" "Status: Running" "IP: $SOLO_IP" \
	"Normal Scheduled AGE default-scheduler Successfully assigned e2e/solo to $SOLO_NODE" -- describe pod solo -n e2e
k create service nodeport solo -n e2e --tcp=8080:80
expect_out "service/solo created"
k get service solo -n e2e -o 'jsonpath={.spec.type} {.spec.ports[0].port} {.spec.ports[0].targetPort} {.spec.ports[0].nodePort}'
expect_ok
read -r svc_type svc_port svc_target node_port <<<"$OUT"
expect_value "nodeport service" "NodePort 8080 80" "$svc_type $svc_port $svc_target"
if [[ $node_port =~ ^[0-9]+$ ]] && ((node_port >= 30000 && node_port <= 32767)); then
	pass
else
	fail "nodePort" "a port in 30000-32767" "$node_port"
fi
# The Service's EndpointSlice (and Endpoints) list the pod: its IP, the
# target port under the Service port's name, ready.
eventually 30 "IPv4 8080-80=80/TCP $SOLO_IP true $SOLO_NODE Pod/solo" get endpointslices -n e2e -l kubernetes.io/service-name=solo \
	-o 'jsonpath={range .items[*]}{.addressType} {range .ports[*]}{.name}={.port}/{.protocol}{end} {range .endpoints[*]}{.addresses[0]} {.conditions.ready} {.nodeName} {.targetRef.kind}/{.targetRef.name}{end}{end}'
k get endpoints solo -n e2e
expect_table "NAME ENDPOINTS AGE
solo $SOLO_IP:80 AGE"
# kubectl delete waits for the graceful deletion, which the pod's node
# finishes; the pod leaves the EndpointSlice.
k delete pod solo -n e2e
expect_match 'pod "solo" deleted( from e2e namespace)?'
k get pod solo -n e2e
expect_fail 1 'Error from server (NotFound): pods "solo" not found'
# (With no endpoints left the controller keeps a placeholder slice without
# ports, as upstream's.)
eventually 30 "IPv4" get endpointslices -n e2e -l kubernetes.io/service-name=solo \
	-o 'jsonpath={range .items[*]}{.addressType} {range .ports[*]}{.name}={.port}/{.protocol}{end} {range .endpoints[*]}{.addresses[0]}{end}{end}'
k delete service solo -n e2e
expect_match 'service "solo" deleted( from e2e namespace)?'

step "create configmap --from-literal"
k create configmap watched -n e2e --from-literal=color=red --from-literal=size=10
expect_out "configmap/watched created"
k get configmap watched -n e2e -o 'jsonpath={.data}'
expect_out '{"color":"red","size":"10"}'
k create configmap watched -n e2e --from-literal=color=red
expect_fail 1 'error: failed to create configmap: configmaps "watched" already exists'

step "get -w sees an update"
"$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get configmap watched -n e2e -w \
	-o 'jsonpath={.data.color}{"\n"}' >"$WORK/watch.out" 2>"$WORK/watch.err" &
WATCH_PID=$!
if wait_for_file_line "$WORK/watch.out" red 20; then
	k patch configmap watched -n e2e --type merge -p '{"data":{"color":"orange"}}'
	expect_out "configmap/watched patched"
	wait_for_file_line "$WORK/watch.out" orange 20 || true
fi
kill "$WATCH_PID" 2>/dev/null || true
wait "$WATCH_PID" 2>/dev/null || true
CMD="kubectl get configmap watched -n e2e -w -o jsonpath=..."
ERR=$(cat "$WORK/watch.err")
expect_value "watch output" "red
orange" "$(cat "$WORK/watch.out")"

step "describe"
k describe deployment web -n e2e
expect_lines "Name: web" "Namespace: e2e" "Labels: app=web" "tier=frontend" "Selector: app=web" \
	"StrategyType: RollingUpdate" "MinReadySeconds: 0" \
	"RollingUpdateStrategy: 25% max unavailable, 25% max surge" \
	"Image: nginx:1.27" "Port: 80/TCP" "MODE: <set to the key 'mode' of config map 'web-config'> Optional: false"
eventually_lines 30 "Replicas: 2 desired | 2 updated | 2 total | 2 available | 0 unavailable" \
	"Available True MinimumReplicasAvailable" "Progressing True NewReplicaSetAvailable" \
	"OldReplicaSets: <none>" "NewReplicaSet: $WEB_RS (2/2 replicas created)" \
	"Normal ScalingReplicaSet AGE deployment-controller Scaled up replica set $WEB_RS from 0 to 2" \
	-- describe deployment web -n e2e
k describe service web -n e2e
expect_lines "Name: web" "Namespace: e2e" "Selector: app=web" "Type: ClusterIP" "Port: http 80/TCP" "TargetPort: 80/TCP"
WEB_IPS=$("$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get pods -n e2e -l app=web -o 'jsonpath={.items[*].status.podIP}' || true)
expect_value "pod IPs" 2 "$(wc -w <<<"$WEB_IPS")"
expect_value "Endpoints: the pods' IPs and target port" "$(sorted "$WEB_IPS" | sed 's/$/:80/')" \
	"$(sorted "$(squeeze <<<"$OUT" | sed -n 's/^Endpoints: //p')")"
k describe configmap web-config -n e2e
expect_lines "Name: web-config" "Namespace: e2e" "greeting:" "hello" "mode:" "production"

step "label"
k label deployment web -n e2e env=staging
expect_out "deployment.apps/web labeled"
k get deployment web -n e2e -o 'jsonpath={.metadata.labels.env} {.metadata.generation}'
expect_out "staging 1"
k label deployment web -n e2e env=prod
expect_fail 1 "'env' already has a value (staging), and --overwrite is false"
k label deployment web -n e2e env-
expect_out "deployment.apps/web unlabeled"
k get deployment web -n e2e -o 'jsonpath={.metadata.labels}'
expect_out '{"app":"web","tier":"frontend"}'

step "annotate"
k annotate service web -n e2e owner=team-a
expect_out "service/web annotated"
k get service web -n e2e -o 'jsonpath={.metadata.annotations.owner}'
expect_out "team-a"

step "edit"
KUBE_EDITOR="sed -i s/team-a/team-b/" k edit service web -n e2e
expect_out "service/web edited"
k get service web -n e2e -o 'jsonpath={.metadata.annotations.owner}'
expect_out "team-b"

step "patch --type merge"
k patch configmap web-config -n e2e --type merge -p '{"data":{"extra":"1","mode":null}}'
expect_out "configmap/web-config patched"
k get configmap web-config -n e2e -o 'jsonpath={.data}'
expect_out '{"extra":"1","greeting":"hello"}'
k patch configmap web-config -n e2e --type merge -p '{"data":{"mode":"production"}}'
expect_out "configmap/web-config patched"

step "patch --type strategic"
k patch deployment web -n e2e --type strategic -p '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.28"}]}}}}'
expect_out "deployment.apps/web patched"
# The container list merges by name: the port and env stay.
k get deployment web -n e2e -o 'jsonpath={.spec.template.spec.containers[*].name} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort} {.spec.template.spec.containers[0].env[0].name} {.metadata.generation}'
expect_out "web nginx:1.28 80 MODE 2"
k patch deployment web -n e2e --type strategic -p '{}'
expect_out "deployment.apps/web patched (no change)"

step "patch --type json"
k patch deployment web -n e2e --type json -p '[{"op":"replace","path":"/spec/replicas","value":3},{"op":"add","path":"/metadata/labels/patched","value":"json"}]'
expect_out "deployment.apps/web patched"
k get deployment web -n e2e -o 'jsonpath={.spec.replicas} {.metadata.labels.patched} {.metadata.generation}'
expect_out "3 json 3"
# A failing "test" operation rejects the whole patch (422, with
# kube-apiserver's message and no details).
k patch deployment web -n e2e --type json -p '[{"op":"test","path":"/spec/replicas","value":99},{"op":"replace","path":"/spec/replicas","value":1}]'
expect_fail 1 'The request is invalid: the server rejected our request due to an error in our request'
k get deployment web -n e2e -o 'jsonpath={.spec.replicas}'
expect_out "3"

step "status is only written through the status subresource"
k patch deployment web -n e2e --type merge -p '{"status":{"replicas":7}}'
expect_out "deployment.apps/web patched (no change)"
k get deployment web -n e2e -o 'jsonpath={.metadata.generation}'
expect_out "3"

step "scale"
k scale deployment web -n e2e --replicas=4
expect_out "deployment.apps/web scaled"
k get deployment web -n e2e -o 'jsonpath={.spec.replicas}'
expect_out "4"
k get --raw /apis/apps/v1/namespaces/e2e/deployments/web/scale
expect_contains '"kind":"Scale"' '"apiVersion":"autoscaling/v1"' '"spec":{"replicas":4}' '"selector":"app=web"'
# The scale writer owns spec.replicas, recorded under subresource scale.
k get deployment web -n e2e -o 'jsonpath={range .metadata.managedFields[?(@.subresource=="scale")]}{.manager}:{.operation}:{.apiVersion}:{.fieldsV1}{end}'
expect_out 'kubectl:Update:apps/v1:{"f:spec":{"f:replicas":{}}}'
k patch deployment web -n e2e --subresource=scale --type merge -p '{"spec":{"replicas":-1}}'
expect_fail 1 'The Scale "web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0'
# The pods follow: the strategic patch's image is rolled out at the new
# scale, the first ReplicaSet is scaled to zero.
rolled_out web
k get deployment web -n e2e -o 'jsonpath={.status.replicas} {.status.updatedReplicas} {.status.readyReplicas} {.status.availableReplicas} {.status.observedGeneration}'
expect_out "4 4 4 4 4"
k get replicasets -n e2e -l app=web -o 'jsonpath={range .items[*]}{.spec.template.spec.containers[0].image}={.spec.replicas}/{.status.readyReplicas} {.metadata.annotations.deployment\.kubernetes\.io/revision}{"\n"}{end}'
OUT=$(sort <<<"$OUT")
expect_out "nginx:1.27=0/ 1
nginx:1.28=4/4 2"
# (Pods of the old ReplicaSet may still be finishing.)
eventually 30 "nginx:1.28 Running nginx:1.28 Running nginx:1.28 Running nginx:1.28 Running" \
	get pods -n e2e -l app=web -o 'jsonpath={range .items[*]}{.spec.containers[0].image} {.status.phase} {end}'
k get pods -n e2e -l app=web -o 'jsonpath={.items[*].status.podIP}'
expect_value "distinct pod IPs" 4 "$(sorted "$OUT" | sort -u | grep -c '^10\.64\.')"
k scale deployment web -n e2e --replicas=1
expect_out "deployment.apps/web scaled"
FILTER="grep -c ." eventually 30 1 get pods -n e2e -l app=web -o name

step "EndpointSlices with named target ports"
k apply -f "$MANIFESTS/api.yaml"
expect_out "deployment.apps/api created
service/api created"
rolled_out api
API_IPS=$("$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get pods -n e2e -l app=api -o 'jsonpath={.items[*].status.podIP}' || true)
expect_value "pod IPs" 3 "$(wc -w <<<"$API_IPS")"
# The Service's ports name the containers' ports: the slice carries the
# container port numbers under the Service's port names.
FILTER=sort eventually 30 "$(sorted "$API_IPS" | sed 's/$/ true true false/')
ports web=8080/TCP metrics=9100/TCP" get endpointslices -n e2e -l kubernetes.io/service-name=api \
	-o 'jsonpath={range .items[*]}ports {range .ports[*]}{.name}={.port}/{.protocol} {end}{"\n"}{range .endpoints[*]}{.addresses[0]} {.conditions.ready} {.conditions.serving} {.conditions.terminating}{"\n"}{end}{end}'
k get endpointslices -n e2e -l kubernetes.io/service-name=api -o 'jsonpath={.items[0].metadata.labels.endpointslice\.kubernetes\.io/managed-by} {.items[0].metadata.ownerReferences[0].kind}/{.items[0].metadata.ownerReferences[0].name}'
expect_out "endpointslice-controller.k8s.io Service/api"
k describe service api -n e2e
expect_lines "Port: web 80/TCP" "TargetPort: http/TCP" "Port: metrics 9100/TCP" "TargetPort: metrics/TCP"
expect_value "Endpoints of both ports" "$(sorted "$API_IPS" | sed 's/$/:8080/')
$(sorted "$API_IPS" | sed 's/$/:9100/')" \
	"$(squeeze <<<"$OUT" | sed -n 's/^Endpoints: //p' | while read -r line; do sorted "$line"; done)"
# Scaled down, the slice follows the pods.
k scale deployment api -n e2e --replicas=1
expect_out "deployment.apps/api scaled"
FILTER="grep -c ." eventually 30 1 get pods -n e2e -l app=api -o name
API_IPS=$("$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get pods -n e2e -l app=api -o 'jsonpath={.items[*].status.podIP}' || true)
eventually 30 "$API_IPS" get endpointslices -n e2e -l kubernetes.io/service-name=api -o 'jsonpath={.items[*].endpoints[*].addresses[0]}'
eventually 30 "$API_IPS" get endpoints api -n e2e -o 'jsonpath={.subsets[*].addresses[*].ip}'
k get endpoints api -n e2e -o 'jsonpath={range .subsets[*].ports[*]}{.name}={.port}/{.protocol}{"\n"}{end}'
OUT=$(sort <<<"$OUT")
expect_out "metrics=9100/TCP
web=8080/TCP"
k delete -f "$MANIFESTS/api.yaml"
expect_match 'deployment\.apps "api" deleted( from e2e namespace)?' 'service "api" deleted( from e2e namespace)?'

step "rollout history and undo"
k create deployment roll -n e2e --image=nginx:1.27 --replicas=2
expect_out "deployment.apps/roll created"
rolled_out roll
k annotate deployment roll -n e2e kubernetes.io/change-cause="create with nginx 1.27"
expect_out "deployment.apps/roll annotated"
# The controller copies the Deployment's annotations to the ReplicaSet of
# the current revision (and to no older one: wait before the next change).
eventually 30 "create with nginx 1.27" get replicasets -n e2e -l app=roll \
	-o 'jsonpath={.items[*].metadata.annotations.kubernetes\.io/change-cause}'
k set image deployment/roll -n e2e nginx=nginx:1.28
expect_out "deployment.apps/roll image updated"
k annotate deployment roll -n e2e --overwrite kubernetes.io/change-cause="update to nginx 1.28"
expect_out "deployment.apps/roll annotated"
rolled_out roll
# History lists the ReplicaSets' revisions and causes.
eventually 30 "deployment.apps/roll
REVISION CHANGE-CAUSE
1 create with nginx 1.27
2 update to nginx 1.28" rollout history deployment/roll -n e2e
k rollout history deployment/roll -n e2e --revision=1
expect_lines "deployment.apps/roll with revision #1" "Image: nginx:1.27"
roll_pods_run nginx:1.28
# undo goes back to revision 1's template, which becomes revision 3; its
# ReplicaSet is scaled up again rather than a new one made.
k rollout undo deployment/roll -n e2e
expect_out "deployment.apps/roll rolled back"
rolled_out roll
k get deployment roll -n e2e -o 'jsonpath={.spec.template.spec.containers[0].image} {.metadata.annotations.deployment\.kubernetes\.io/revision} {.metadata.annotations.kubernetes\.io/change-cause}'
expect_out "nginx:1.27 3 create with nginx 1.27"
roll_pods_run nginx:1.27
roll_replicasets "2:nginx:1.28=0
3:nginx:1.27=2"
eventually 30 "deployment.apps/roll
REVISION CHANGE-CAUSE
2 update to nginx 1.28
3 create with nginx 1.27" rollout history deployment/roll -n e2e
k rollout undo deployment/roll -n e2e --to-revision=7
expect_fail 1 'unable to find specified revision 7 in history'

step "rollout restart"
ROLL_PODS=$("$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get pods -n e2e -l app=roll -o name || true)
k rollout restart deployment/roll -n e2e
expect_out "deployment.apps/roll restarted"
rolled_out roll
k get deployment roll -n e2e -o 'jsonpath={.spec.template.metadata.annotations.kubectl\.kubernetes\.io/restartedAt} {.metadata.annotations.deployment\.kubernetes\.io/revision}'
expect_match '[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z 4'
# Every pod was replaced by one of the new ReplicaSet.
ROLL_RS=$("$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get replicasets -n e2e -l app=roll -o 'jsonpath={.items[?(@.spec.replicas==2)].metadata.name}' || true)
eventually 30 "${ROLL_RS#roll-} ${ROLL_RS#roll-}" get pods -n e2e -l app=roll -o 'jsonpath={range .items[*]}{.metadata.labels.pod-template-hash} {end}'
k get pods -n e2e -l app=roll -o name
expect_value "pods replaced" "" "$(comm -12 <(sort <<<"$ROLL_PODS") <(sort <<<"$OUT"))"

step "rollout pause and resume"
k rollout pause deployment/roll -n e2e
expect_out "deployment.apps/roll paused"
k set image deployment/roll -n e2e nginx=nginx:1.29
expect_out "deployment.apps/roll image updated"
# Once the controller has seen the change (observedGeneration), a paused
# Deployment still has no ReplicaSet for it.
ROLL_GEN=$("$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get deployment roll -n e2e -o 'jsonpath={.metadata.generation}' || true)
k wait deployment/roll -n e2e --for=jsonpath='{.status.observedGeneration}'="$ROLL_GEN" --timeout=30s
expect_out "deployment.apps/roll condition met"
k get deployment roll -n e2e -o 'jsonpath={.spec.paused} {.status.conditions[?(@.type=="Progressing")].reason} {.status.updatedReplicas}'
expect_out "true DeploymentPaused "
k get replicasets -n e2e -l app=roll -o 'jsonpath={.items[*].spec.template.spec.containers[0].image}'
OUT=$(sorted "$OUT")
expect_out "nginx:1.27
nginx:1.27
nginx:1.28"
k get pods -n e2e -l app=roll -o 'jsonpath={.items[*].spec.containers[0].image}'
expect_out "nginx:1.27 nginx:1.27"
k rollout resume deployment/roll -n e2e
expect_out "deployment.apps/roll resumed"
rolled_out roll
k get deployment roll -n e2e -o 'jsonpath={.spec.paused} {.metadata.annotations.deployment\.kubernetes\.io/revision} {.status.updatedReplicas}/{.status.availableReplicas}'
expect_out " 5 2/2"
roll_pods_run nginx:1.29
roll_replicasets "2:nginx:1.28=0
3:nginx:1.27=0
4:nginx:1.27=0
5:nginx:1.29=2"

step "cascading deletes"
# --cascade=orphan: the Deployment goes, its ReplicaSet stays without an
# owner, with its pods.
k create deployment orphan -n e2e --image=nginx:1.27 --replicas=2
expect_out "deployment.apps/orphan created"
rolled_out orphan
ORPHAN_RS=$("$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get replicasets -n e2e -l app=orphan -o 'jsonpath={.items[*].metadata.name}' || true)
k delete deployment orphan -n e2e --cascade=orphan
expect_match 'deployment\.apps "orphan" deleted( from e2e namespace)?'
k get replicasets -n e2e -l app=orphan -o 'jsonpath={range .items[*]}{.metadata.name} owners=[{.metadata.ownerReferences}] ready={.status.readyReplicas}{end}'
expect_out "$ORPHAN_RS owners=[] ready=2"
k get pods -n e2e -l app=orphan -o 'jsonpath={range .items[*]}{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {end}'
expect_out "ReplicaSet/$ORPHAN_RS ReplicaSet/$ORPHAN_RS "
# Deleting the ReplicaSet (background propagation) takes the pods along.
k delete replicaset "$ORPHAN_RS" -n e2e
expect_match "replicaset\\.apps \"$ORPHAN_RS\" deleted( from e2e namespace)?"
eventually 30 "" get pods -n e2e -l app=orphan -o name
# --cascade=foreground: kubectl returns once the Deployment is gone, which
# is after its ReplicaSets (four revisions) and their pods.
k delete deployment roll -n e2e --cascade=foreground
expect_match 'deployment\.apps "roll" deleted( from e2e namespace)?'
k get deployments,replicasets,pods -n e2e -l app=roll -o name
expect_out ""

step "LoadBalancer Services"
# The pool has three addresses: the first three Services get them.
for lb in lb-a lb-b lb-c; do
	k create service loadbalancer "$lb" -n e2e --tcp=80:8080
	expect_out "service/$lb created"
	k wait service "$lb" -n e2e --for=jsonpath='{.status.loadBalancer.ingress[0].ipMode}'=VIP --timeout=30s
	expect_out "service/$lb condition met"
done
k get services lb-a lb-b lb-c -n e2e -o 'jsonpath={range .items[*]}{.metadata.name}={.status.loadBalancer.ingress[*].ip} {end}'
expect_out "lb-a=192.0.2.10 lb-b=192.0.2.11 lb-c=192.0.2.12 "
k get service lb-a -n e2e -o 'jsonpath={.metadata.finalizers}'
expect_out '["service.kubernetes.io/load-balancer-cleanup"]'
# A fourth finds the pool exhausted: pending, with a Warning event.
k create service loadbalancer lb-d -n e2e --tcp=80:8080
expect_out "service/lb-d created"
eventually 30 'Warning AllocationFailed Failed to allocate IP for "e2e/lb-d": no available IPs' get events -n e2e \
	--field-selector involvedObject.kind=Service,involvedObject.name=lb-d,reason=AllocationFailed \
	-o 'jsonpath={range .items[*]}{.type} {.reason} {.message}{"\n"}{end}'
k get services -n e2e
OUT=$(squeeze <<<"$OUT" | ages | service_rows)
expect_lines "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE" \
	"lb-a LoadBalancer IP 192.0.2.10 80:NODEPORT/TCP AGE" \
	"lb-b LoadBalancer IP 192.0.2.11 80:NODEPORT/TCP AGE" \
	"lb-c LoadBalancer IP 192.0.2.12 80:NODEPORT/TCP AGE" \
	"lb-d LoadBalancer IP <pending> 80:NODEPORT/TCP AGE"
eventually_lines 30 "Type: LoadBalancer" "Port: 80-8080 80/TCP" \
	'Warning AllocationFailed AGE service-lb-controller Failed to allocate IP for "e2e/lb-d": no available IPs' \
	-- describe service lb-d -n e2e
# Deleting a Service releases its address (kubectl waits for the cloud
# controller's finalizer), and the pending Service gets it.
k delete service lb-a -n e2e
expect_match 'service "lb-a" deleted( from e2e namespace)?'
k wait service lb-d -n e2e --for=jsonpath='{.status.loadBalancer.ingress[0].ip}'=192.0.2.10 --timeout=30s
expect_out "service/lb-d condition met"
k get service lb-d -n e2e
OUT=$(squeeze <<<"$OUT" | ages | service_rows)
expect_out "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE
lb-d LoadBalancer IP 192.0.2.10 80:NODEPORT/TCP AGE"
eventually_lines 30 "LoadBalancer Ingress: 192.0.2.10 (VIP)" \
	"Normal EnsuringLoadBalancer AGE service-lb-controller Ensuring load balancer" \
	"Normal EnsuredLoadBalancer AGE service-lb-controller Ensured load balancer" \
	-- describe service lb-d -n e2e
# lb-d stays, holding its address, until the namespace is deleted.
k delete service lb-b lb-c -n e2e
expect_match 'service "lb-b" deleted( from e2e namespace)?' 'service "lb-c" deleted( from e2e namespace)?'

step "scheduling failures"
# No node has the label: the pod stays Pending and the scheduler says why
# for each node, in kube-scheduler's words (lost-node-0 is cordoned).
# Skiff has no preemption, so the message lacks upstream's "preemption:"
# sentence.
k run nowhere -n e2e --image=nginx:1.27 --overrides='{"apiVersion":"v1","spec":{"nodeSelector":{"disktype":"nvme"}}}'
expect_out "pod/nowhere created"
NOWHERE_MSG="0/4 nodes are available: 1 node(s) were unschedulable, 3 node(s) didn't match Pod's node affinity/selector."
eventually 30 "Warning FailedScheduling default-scheduler $NOWHERE_MSG" get events -n e2e \
	--field-selector involvedObject.kind=Pod,involvedObject.name=nowhere,reason=FailedScheduling \
	-o 'jsonpath={range .items[*]}{.type} {.reason} {.reportingComponent} {.message}{"\n"}{end}'
k get events -n e2e --field-selector involvedObject.name=nowhere
OUT=$(squeeze <<<"$OUT" | ages)
expect_lines "AGE Warning FailedScheduling pod/nowhere $NOWHERE_MSG"
k get pod nowhere -n e2e -o 'jsonpath={.status.phase} {.spec.nodeName} {.status.conditions[?(@.type=="PodScheduled")].status} {.status.conditions[?(@.type=="PodScheduled")].reason}'
expect_out "Pending  False Unschedulable"
# Once a node gets the label, the scheduler retries and places the pod
# there.
k label node hollow-node-2 disktype=nvme
expect_out "node/hollow-node-2 labeled"
k wait pod/nowhere -n e2e --for=condition=Ready --timeout=60s
expect_out "pod/nowhere condition met"
eventually_lines 30 "Node-Selectors: disktype=nvme" "Warning FailedScheduling AGE default-scheduler $NOWHERE_MSG" \
	"Normal Scheduled AGE default-scheduler Successfully assigned e2e/nowhere to hollow-node-2" \
	-- describe pod nowhere -n e2e
k delete pod nowhere -n e2e
expect_match 'pod "nowhere" deleted( from e2e namespace)?'
k label node hollow-node-2 disktype-
expect_out "node/hollow-node-2 unlabeled"

step "a node dies"
# fragile's pods go to lost-node-0, the only schedulable node for a moment.
k cordon hollow-node-0 hollow-node-1 hollow-node-2
expect_out "node/hollow-node-0 cordoned
node/hollow-node-1 cordoned
node/hollow-node-2 cordoned"
k uncordon lost-node-0
expect_out "node/lost-node-0 uncordoned"
k create deployment fragile -n e2e --image=nginx:1.27 --replicas=2
expect_out "deployment.apps/fragile created"
rolled_out fragile
k get pods -n e2e -l app=fragile -o 'jsonpath={range .items[*]}{.spec.nodeName} {.status.podIP} {end}'
expect_match 'lost-node-0 10\.64\.3\.[0-9]+ lost-node-0 10\.64\.3\.[0-9]+ '
FRAGILE_PODS=$("$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get pods -n e2e -l app=fragile -o name || true)
k uncordon hollow-node-0 hollow-node-1 hollow-node-2
expect_out "node/hollow-node-0 uncordoned
node/hollow-node-1 uncordoned
node/hollow-node-2 uncordoned"
# The node's process dies: its Lease is no longer renewed. After the
# grace period (8 s here) the node lifecycle controller marks it Unknown
# and taints it unreachable.
stop_pid "$LOST_PID" KILL
LOST_PID=""
k wait node/lost-node-0 --for=condition=Ready=Unknown --timeout=60s
expect_out "node/lost-node-0 condition met"
k get nodes
expect_table "NAME STATUS ROLES AGE VERSION
hollow-node-0 Ready <none> AGE v1.37.2-skiff-hollow
hollow-node-1 Ready <none> AGE v1.37.2-skiff-hollow
hollow-node-2 Ready <none> AGE v1.37.2-skiff-hollow
lost-node-0 NotReady <none> AGE v1.37.2-skiff-hollow"
FILTER=sort eventually 30 "node.kubernetes.io/unreachable:NoExecute
node.kubernetes.io/unreachable:NoSchedule" get node lost-node-0 -o 'jsonpath={range .spec.taints[*]}{.key}:{.effect}{"\n"}{end}'
eventually_lines 30 "Taints: node.kubernetes.io/unreachable:NoExecute" "node.kubernetes.io/unreachable:NoSchedule" \
	"Normal NodeNotReady AGE node-controller Node lost-node-0 status is now: NodeNotReady" \
	-- describe node lost-node-0
expect_match "Ready Unknown .* NodeStatusUnknown Kubelet stopped posting node status\\."
# Its pods tolerate the taint for 2 s, then the taint eviction controller
# deletes them; they stay Terminating (no agent finishes them) while the
# ReplicaSet replaces them on the live nodes.
FILTER=pod_states eventually 60 "hollow-node-N Running live
hollow-node-N Running live
lost-node-0 Running terminating
lost-node-0 Running terminating" get pods -n e2e -l app=fragile \
	-o 'jsonpath={range .items[*]}{.spec.nodeName} {.status.phase} {.metadata.deletionTimestamp}{"\n"}{end}'
k wait deployment/fragile -n e2e --for=jsonpath='{.status.availableReplicas}'=2 --timeout=60s
expect_out "deployment.apps/fragile condition met"
k get pods -n e2e -l app=fragile
OUT=$(squeeze <<<"$OUT" | ages)
expect_value "pods evicted and replaced" "2 Running, 2 Terminating" \
	"$(grep -c ' 1/1 Running 0 AGE$' <<<"$OUT") Running, $(grep -c ' Terminating 0 AGE$' <<<"$OUT") Terminating"
for pod in $FRAGILE_PODS; do
	k get "$pod" -n e2e -o 'jsonpath={.status.conditions[?(@.type=="DisruptionTarget")].reason} {.status.conditions[?(@.type=="Ready")].status}'
	expect_out "DeletionByTaintManager False"
	eventually_lines 30 "Status: Terminating (lasts AGE)" "Warning NodeNotReady AGE node-controller Node is not ready" \
		"Normal TaintManagerEviction AGE taint-eviction-controller Marking for deletion Pod e2e/${pod#pod/}" \
		-- describe "$pod" -n e2e
	# Announced (and deleted) once.
	k get events -n e2e --field-selector "involvedObject.name=${pod#pod/},reason=TaintManagerEviction" -o 'jsonpath={.items[*].count}'
	expect_out "1"
done

step "the node comes back"
# The same process again: the node renews its Lease, is Ready, loses its
# taints and finishes the deletion of its old pods.
start_hollow 1 lost-node- "$LOST_LOG"
LOST_PID=$HOLLOW_STARTED
k wait node/lost-node-0 --for=condition=Ready --timeout=60s
expect_out "node/lost-node-0 condition met"
eventually 30 "" get node lost-node-0 -o 'jsonpath={.spec.taints}'
k get node lost-node-0 -o 'jsonpath={.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address}'
expect_out "10.64.3.0/24 100.64.0.4"
FILTER=pod_states eventually 30 "hollow-node-N Running live
hollow-node-N Running live" get pods -n e2e -l app=fragile \
	-o 'jsonpath={range .items[*]}{.spec.nodeName} {.status.phase} {.metadata.deletionTimestamp}{"\n"}{end}'
k delete deployment fragile -n e2e
expect_match 'deployment\.apps "fragile" deleted( from e2e namespace)?'

step "apply a changed manifest (three-way merge)"
# A server-side dry run reports the change and stores nothing.
k apply --dry-run=server -f "$MANIFESTS/app-v2.yaml"
expect_lines "configmap/web-config configured (server dry run)" "deployment.apps/web configured (server dry run)"
k get configmap web-config -n e2e -o 'jsonpath={.data.mode}'
expect_out "production"
k apply -f "$MANIFESTS/app-v2.yaml"
expect_lines "namespace/e2e unchanged" "configmap/web-config configured" \
	"deployment.apps/web configured" "service/web unchanged"
# "mode" left the manifest and the object; "extra" (set by patch, never in
# the manifest) stays.
k get configmap web-config -n e2e -o 'jsonpath={.data}'
expect_out '{"color":"blue","extra":"1","greeting":"hello"}'
# "tier" and the container's env left the manifest and the object; the
# label set by patch stays; replicas goes back to the manifest's 2 (kubectl
# patches every field whose live value differs from the manifest: the
# reason to leave replicas out of manifests of scaled Deployments).
k get deployment web -n e2e -o 'jsonpath={.metadata.labels} {.spec.template.spec.containers[0].image} {.spec.replicas} [{.spec.template.spec.containers[0].env}]'
expect_out '{"app":"web","patched":"json"} nginx:1.29 2 []'
k get service web -n e2e -o 'jsonpath={.metadata.annotations.owner}'
expect_out "team-b"
rolled_out web
eventually 30 "nginx:1.29 nginx:1.29" get pods -n e2e -l app=web -o 'jsonpath={.items[*].spec.containers[0].image}'

step "apply --server-side"
k apply --server-side -f "$MANIFESTS/server-side.yaml"
expect_out "configmap/ssa-config serverside-applied"
k get configmap ssa-config -n e2e -o 'jsonpath={range .metadata.managedFields[*]}{.manager}:{.operation} {end}'
expect_out "kubectl:Apply "
# Another writer takes a field the apply owns ...
k patch configmap ssa-config -n e2e --type merge -p '{"data":{"size":"2"}}'
expect_out "configmap/ssa-config patched"
# ... so applying the old value again conflicts ...
k apply --server-side -f "$MANIFESTS/server-side.yaml"
expect_fail 1 "Apply failed with 1 conflict" 'conflict with "kubectl-patch"' ".data.size"
k get configmap ssa-config -n e2e -o 'jsonpath={.data.size}'
expect_out "2"
# ... until it forces the conflict.
k apply --server-side --force-conflicts -f "$MANIFESTS/server-side.yaml"
expect_out "configmap/ssa-config serverside-applied"
k get configmap ssa-config -n e2e -o 'jsonpath={.data.size} {range .metadata.managedFields[*]}{.manager}:{.operation} {end}'
expect_out "1 kubectl:Apply "
# create (not apply) of an existing object is refused.
k create -f "$MANIFESTS/server-side.yaml"
expect_fail 1 'Error from server (AlreadyExists): error when creating' 'configmaps "ssa-config" already exists'

# Ports without a protocol are matched to the stored (defaulted) ones:
# applying the manifest again changes nothing and adds no entry.
k apply --server-side -f "$MANIFESTS/server-side-ports.yaml"
expect_lines "service/ssa-ports serverside-applied" "deployment.apps/ssa-ports serverside-applied"
k get service,deployment ssa-ports -n e2e -o 'jsonpath={range .items[*]}{.metadata.resourceVersion}{" "}{end}'
SSA_RVS=$OUT
k apply --server-side -f "$MANIFESTS/server-side-ports.yaml"
expect_lines "service/ssa-ports serverside-applied" "deployment.apps/ssa-ports serverside-applied"
k get service,deployment ssa-ports -n e2e -o 'jsonpath={range .items[*]}{.metadata.resourceVersion}{" "}{end}'
expect_out "$SSA_RVS"
k get service ssa-ports -n e2e -o 'jsonpath={range .spec.ports[*]}{.port}/{.protocol} {end}'
expect_out "80/TCP "
k get deployment ssa-ports -n e2e -o 'jsonpath={range .spec.template.spec.containers[*].ports[*]}{.containerPort}/{.protocol} {end}{range .spec.template.spec.initContainers[*].ports[*]}{.containerPort}/{.protocol} {end}'
expect_out "80/TCP 9000/TCP "
k delete -f "$MANIFESTS/server-side-ports.yaml"
expect_match 'service "ssa-ports" deleted( from e2e namespace)?' 'deployment\.apps "ssa-ports" deleted( from e2e namespace)?'

step "namespaces/finalize"
# The namespace controller's endpoint takes only qualified finalizer
# names, as kube-apiserver's finalize strategy.
k create namespace e2e-finalize
expect_out "namespace/e2e-finalize created"
printf '%s' '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"e2e-finalize"},"spec":{"finalizers":["kubernetes","not-qualified"]}}' >"$WORK/finalize.json"
k replace --raw /api/v1/namespaces/e2e-finalize/finalize -f "$WORK/finalize.json"
expect_fail 1 'spec.finalizers[1]' 'name is neither a standard finalizer name nor is it fully qualified'
k get namespace e2e-finalize -o 'jsonpath={.spec.finalizers}'
expect_out '["kubernetes"]'
k delete namespace e2e-finalize --wait=false
expect_out 'namespace "e2e-finalize" deleted'

step "diff"
k diff -f "$MANIFESTS/diff.yaml"
# Exit status 1: differences found.
WANT_RC=1 expect_lines "- greeting: hello" "+ greeting: howdy" "+ name: diff-new" "+ fresh: \"yes\""
# diff is a dry run: nothing changed, nothing created.
k get configmap web-config -n e2e -o 'jsonpath={.data.greeting}'
expect_out "hello"
k get configmap diff-new -n e2e
expect_fail 1 'Error from server (NotFound): configmaps "diff-new" not found'
# The live objects are what app-v2.yaml says: no difference.
k diff -f "$MANIFESTS/app-v2.yaml"
expect_out ""

step "api-resources"
k api-resources
expect_table "NAME SHORTNAMES APIVERSION NAMESPACED KIND
configmaps cm v1 true ConfigMap
endpoints ep v1 true Endpoints
events ev v1 true Event
namespaces ns v1 false Namespace
nodes no v1 false Node
pods po v1 true Pod
secrets v1 true Secret
serviceaccounts sa v1 true ServiceAccount
services svc v1 true Service
deployments deploy apps/v1 true Deployment
replicasets rs apps/v1 true ReplicaSet
leases coordination.k8s.io/v1 true Lease
endpointslices discovery.k8s.io/v1 true EndpointSlice
events ev events.k8s.io/v1 true Event"
# Short names resolve through discovery.
k get deploy,cm -n e2e -o name
OUT=$(grep -vxF configmap/kube-root-ca.crt <<<"$OUT" || true)
expect_out "deployment.apps/web
configmap/ssa-config
configmap/watched
configmap/web-config"

step "explain"
k explain deployment.spec
expect_lines "GROUP: apps" "KIND: Deployment" "VERSION: v1" "FIELD: spec <DeploymentSpec>" \
	"replicas <integer>" "selector <LabelSelector> -required-" "template <PodTemplateSpec> -required-"
k explain deployment.spec.template.spec.containers.image
expect_lines "KIND: Deployment" "FIELD: image <string>"
k explain pods.spec.containers.ports.containerPort
expect_lines "KIND: Pod" "FIELD: containerPort <integer>"

step "malformed manifests are rejected with field paths"
k apply -f "$MANIFESTS/invalid-type.yaml"
expect_fail 1 "Error from server (BadRequest)" "spec.replicas"
k apply -f "$MANIFESTS/invalid-unknown-field.yaml"
expect_fail 1 "Error from server (BadRequest)" 'unknown field "spec.replica"'
k apply -f "$MANIFESTS/invalid-selector.yaml"
expect_fail 1 'The Deployment "bad-selector" is invalid' "spec.template.metadata.labels: Invalid value" \
	"spec.template.spec.containers[0].image: Required value"
k get deployments -n e2e -o name
expect_out "deployment.apps/web"

step "wait --for=jsonpath"
"$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" wait configmap/watched -n e2e \
	--for=jsonpath='{.data.color}'=green --timeout=30s >"$WORK/wait.out" 2>"$WORK/wait.err" &
WAIT_PID=$!
sleep 1
k patch configmap watched -n e2e --type merge -p '{"data":{"color":"green"}}'
expect_out "configmap/watched patched"
set +e
wait "$WAIT_PID"
RC=$?
set -e
CMD="kubectl wait configmap/watched -n e2e --for=jsonpath={.data.color}=green --timeout=30s"
OUT=$(cat "$WORK/wait.out")
ERR=$(cat "$WORK/wait.err")
expect_out "configmap/watched condition met"

step "restart keeps objects and resourceVersions"
snapshot() {
	"$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get namespaces,configmaps,secrets,deployments,services -A \
		-o 'jsonpath={range .items[*]}{.kind} {.metadata.namespace}/{.metadata.name} {.metadata.uid} {.metadata.resourceVersion}{"\n"}{end}' |
		grep -E ' e2e/| /e2e ' | grep -v ' e2e/kube-root-ca.crt ' | sort
}
pods() {
	"$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get pods -n e2e -l app=web \
		-o 'jsonpath={range .items[*]}{.metadata.name} {.metadata.uid} {.spec.nodeName} {.status.podIP} {.status.phase}{"\n"}{end}' | sort
}
BEFORE=$(snapshot || true)
# The namespace, three ConfigMaps, the Secret, the Deployment, the two
# Services (web and the LoadBalancer lb-d). The controllers, started again,
# find nothing to change.
expect_value "objects before the restart" 8 "$(grep -c . <<<"$BEFORE" || true)"
PODS_BEFORE=$(pods || true)
expect_value "pods before the restart" 2 "$(grep -c ' Running$' <<<"$PODS_BEFORE" || true)"
CLUSTER_IP=$("$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get service web -n e2e -o 'jsonpath={.spec.clusterIP}' || true)
stop_server
CMD="kill -TERM <server>"
expect_value "the server stops cleanly on SIGTERM" clean "$SERVER_STOPPED"
if start_server; then
	pass
	AFTER=$(snapshot || true)
	CMD="kubectl get namespaces,configmaps,secrets,deployments,services -A -o jsonpath=... (before and after)"
	expect_value "objects, uids and resourceVersions" "$BEFORE" "$AFTER"
	k get service web -n e2e -o 'jsonpath={.spec.clusterIP}'
	expect_out "$CLUSTER_IP"
	k get configmap web-config -n e2e -o 'jsonpath={.data.color}'
	expect_out "blue"
	k get service lb-d -n e2e -o 'jsonpath={.status.loadBalancer.ingress[*].ip}'
	expect_out "192.0.2.10"
	# The nodes stay Ready, the pods where they were.
	k get nodes
	expect_table "NAME STATUS ROLES AGE VERSION
hollow-node-0 Ready <none> AGE v1.37.2-skiff-hollow
hollow-node-1 Ready <none> AGE v1.37.2-skiff-hollow
hollow-node-2 Ready <none> AGE v1.37.2-skiff-hollow
lost-node-0 Ready <none> AGE v1.37.2-skiff-hollow"
	CMD="kubectl get pods -n e2e -o jsonpath=... (before and after)"
	expect_value "pods, uids, nodes and IPs" "$PODS_BEFORE" "$(pods || true)"
else
	fail "restart" "server ready again" "$(tail -n 20 "$SERVER_LOG")"
fi

step "delete"
"$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" wait configmap/watched -n e2e --for=delete --timeout=30s \
	>"$WORK/wait.out" 2>"$WORK/wait.err" &
WAIT_PID=$!
sleep 1
k delete configmap watched -n e2e
# (kubectl 1.33 and later add " from <namespace> namespace".)
expect_match 'configmap "watched" deleted( from e2e namespace)?'
set +e
wait "$WAIT_PID"
RC=$?
set -e
CMD="kubectl wait configmap/watched -n e2e --for=delete --timeout=30s"
OUT=$(cat "$WORK/wait.out")
ERR=$(cat "$WORK/wait.err")
expect_out "configmap/watched condition met"
k delete deployment web -n e2e --wait
expect_match 'deployment\.apps "web" deleted( from e2e namespace)?'
k get deployment web -n e2e
expect_fail 1 'Error from server (NotFound): deployments.apps "web" not found'
# The garbage collector deletes the ReplicaSets, then their pods.
eventually 30 "" get replicasets,pods -n e2e -l app=web -o name
k replace -f "$MANIFESTS/server-side.yaml"
expect_out "configmap/ssa-config replaced"
k delete -f "$MANIFESTS/server-side.yaml"
expect_match 'configmap "ssa-config" deleted( from e2e namespace)?'
# A Deployment with running pods, the Service in front of them and a
# LoadBalancer Service holding a pool address, for the namespace deletion.
k apply -f "$MANIFESTS/app.yaml"
expect_lines "deployment.apps/web created"
rolled_out web
k get all -n e2e -o name
expect_value "objects in the namespace" "2 pods, 2 services, 1 deployment, 1 replicaset" \
	"$(grep -c '^pod/' <<<"$OUT") pods, $(grep -c '^service/' <<<"$OUT") services, $(grep -c '^deployment' <<<"$OUT") deployment, $(grep -c '^replicaset' <<<"$OUT") replicaset"

step "delete namespace"
# kubectl returns once the namespace controller has emptied the namespace
# (pods finished by their nodes, the LoadBalancer's address released
# through the cloud controller's finalizer) and removed it.
k delete namespace e2e --wait --timeout=60s
expect_out 'namespace "e2e" deleted'
k get namespace e2e
expect_fail 1 'Error from server (NotFound): namespaces "e2e" not found'
k get all,configmaps,secrets,endpointslices,events -n e2e -o name
expect_out ""
k get pods -A -o name
expect_out ""
# lb-d's address is free again: a new Service that asks for it gets it.
k apply -f - <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: after, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerIP: 192.0.2.10
  ports: [{port: 80}]
EOF
expect_out "service/after created"
k wait service after -n default --for=jsonpath='{.status.loadBalancer.ingress[0].ip}'=192.0.2.10 --timeout=30s
expect_out "service/after condition met"
k delete service after -n default
expect_match 'service "after" deleted( from default namespace)?'

echo
echo "e2e: $PASSED passed, $FAILED failed"
((FAILED == 0))
