#!/usr/bin/env bash
# End-to-end test of `skiff server` with stock kubectl.
#
# Starts the server on a temporary data directory and a free port on
# 127.0.0.1, then drives it with kubectl using nothing but --kubeconfig (the
# admin kubeconfig the server writes), and checks what each command prints:
# exact strings or jsonpath values, not just exit codes. A failed check
# prints the command, the expected and the actual output, and the run goes
# on; the last line counts passes and failures, and the exit status is 1 if
# any check failed.
#
# Usage: SKIFF=bin/skiff test/e2e/run.sh      (make test-e2e does this)
#   SKIFF    the skiff binary (required)
#   KUBECTL  the kubectl binary (default: kubectl on PATH; when there is none,
#            one is built from test/e2e/kubectl, a module of its own)
#
# Only what the API server guarantees on its own is checked: with no nodes
# and until the controllers exist, Deployments have no pods. Places for the
# checks that need them are marked "LATER".
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
ETCD_CLIENT_PORT=""
ETCD_PEER_PORT=""

cleanup() {
	local rc=$?
	jobs -p | xargs -r kill 2>/dev/null || true
	stop_server
	if ((rc != 0)) && [[ -f $SERVER_LOG ]]; then
		echo "--- last 40 lines of the server log" >&2
		tail -n 40 "$SERVER_LOG" >&2 || true
	fi
	rm -rf "$WORK"
	exit "$rc"
}
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
	echo "== $STEP"
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

# ages: replaces AGE column values (5s, 2m10s, 3h) with AGE.
ages() { sed -E 's/(^| )[0-9]+[smhdy]([0-9]+[smh])?( |$)/\1AGE\3/g'; }

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
	"$SKIFF" server --data-dir "$DATA" --secure-port "$PORT" --bind-address 127.0.0.1 \
		--etcd-client-url "http://127.0.0.1:$ETCD_CLIENT_PORT" \
		--etcd-peer-url "http://127.0.0.1:$ETCD_PEER_PORT" >>"$SERVER_LOG" 2>&1 &
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

stop_server() {
	[[ -n $SERVER_PID ]] || return 0
	kill -TERM "$SERVER_PID" 2>/dev/null || true
	local deadline=$((SECONDS + 30))
	while kill -0 "$SERVER_PID" 2>/dev/null && ((SECONDS < deadline)); do
		sleep 0.2
	done
	kill -KILL "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=""
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
# READY stays 0/2 without nodes; UP-TO-DATE and AVAILABLE belong to the
# controllers, so only the other columns are compared.
expect_value "wide header" "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR" \
	"$(head -n 1 <<<"$OUT" | squeeze)"
expect_value "wide row (name ready containers images selector)" "web 0/2 web nginx:1.27 app=web" \
	"$(sed -n 2p <<<"$OUT" | squeeze | awk '{print $1, $2, $6, $7, $8}')"
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
# LATER: replicaset.apps/web-... and pod/web-... once the controllers run.
expect_match 'deployment\.apps/web' 'service/web'

step "run a pod, expose a NodePort Service"
k run solo -n e2e --image=nginx:1.27 --labels=app=solo
expect_out "pod/solo created"
# No node can run it here: it stays Pending with no IP and no node.
k get pod solo -n e2e -o wide
expect_value "pod wide header" "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES" \
	"$(head -n 1 <<<"$OUT" | squeeze)"
expect_value "pod wide row" "solo 0/1 Pending 0 AGE <none> <none> <none> <none>" \
	"$(sed -n 2p <<<"$OUT" | squeeze | ages)"
k get pod solo -n e2e -o 'jsonpath={.spec.restartPolicy} {.spec.dnsPolicy} {.spec.containers[0].imagePullPolicy} {.spec.containers[0].terminationMessagePath} {.spec.schedulerName} {.status.phase} {.status.qosClass}'
expect_out "Always ClusterFirst IfNotPresent /dev/termination-log default-scheduler Pending BestEffort"
# The DefaultTolerationSeconds defaults (300 s unless the server is told
# otherwise).
k get pod solo -n e2e -o 'jsonpath={range .spec.tolerations[*]}{.key}={.tolerationSeconds} {end}'
expect_out "node.kubernetes.io/not-ready=300 node.kubernetes.io/unreachable=300 "
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
# A pod that was never scheduled is deleted at once.
k delete pod solo -n e2e
expect_match 'pod "solo" deleted( from e2e namespace)?'
k get pod solo -n e2e
expect_fail 1 'Error from server (NotFound): pods "solo" not found'
k delete service solo -n e2e
expect_match 'service "solo" deleted( from e2e namespace)?'
# LATER: with nodes, the pod is scheduled, runs and gets an IP, and the
# Service's EndpointSlice lists it.

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
expect_prefix "Replicas: 2 desired |"
# LATER: "NewReplicaSet: web-..." and the controllers' events.
k describe service web -n e2e
expect_lines "Name: web" "Namespace: e2e" "Selector: app=web" "Type: ClusterIP" "Port: http 80/TCP" "TargetPort: 80/TCP"
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
# LATER: kubectl rollout status deployment/web once pods can run.

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
BEFORE=$(snapshot || true)
# The namespace, three ConfigMaps, the Secret, the Deployment, the Service.
expect_value "objects before the restart" 7 "$(grep -c . <<<"$BEFORE" || true)"
CLUSTER_IP=$("$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get service web -n e2e -o 'jsonpath={.spec.clusterIP}' || true)
stop_server
if start_server; then
	pass
	AFTER=$(snapshot || true)
	CMD="kubectl get namespaces,configmaps,secrets,deployments,services -A -o jsonpath=... (before and after)"
	expect_value "objects, uids and resourceVersions" "$BEFORE" "$AFTER"
	k get service web -n e2e -o 'jsonpath={.spec.clusterIP}'
	expect_out "$CLUSTER_IP"
	k get configmap web-config -n e2e -o 'jsonpath={.data.color}'
	expect_out "blue"
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
k replace -f "$MANIFESTS/server-side.yaml"
expect_out "configmap/ssa-config replaced"
k delete -f "$MANIFESTS/server-side.yaml"
expect_match 'configmap "ssa-config" deleted( from e2e namespace)?'
# Removing a namespace's contents is the namespace controller's work:
# until it runs the namespace stays Terminating.
k delete namespace e2e --wait=false
expect_out 'namespace "e2e" deleted'
k get namespace e2e -o 'jsonpath={.status.phase}'
if ((RC == 0)) && [[ $OUT == Terminating ]]; then
	pass
elif ((RC == 1)) && grep -qF 'namespaces "e2e" not found' <<<"$ERR"; then
	pass
else
	fail "namespace after delete" "Terminating, or not found" "$OUT"
fi
# LATER: kubectl delete namespace e2e --wait (returns once the namespace
# controller has emptied and removed it).

echo
echo "e2e: $PASSED passed, $FAILED failed"
((FAILED == 0))
