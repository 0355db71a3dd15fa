package apiserver_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-project/skiff/controlplane/apiserver"
	"github.com/skiff-project/skiff/controlplane/apiserver/apiservertest"
	"github.com/skiff-project/skiff/controlplane/storage"
)

// contentTypes records the Content-Type of every response by method and
// path, to tell that the server answered in protobuf (client-go would
// take JSON too, silently).
type contentTypes struct {
	mu   sync.Mutex
	seen map[string]string
	rt   http.RoundTripper
}

func (c *contentTypes) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(req)
	if err == nil {
		key := req.Method + " " + req.URL.Path
		if req.URL.Query().Get("watch") == "true" {
			key = "WATCH " + req.URL.Path
		}
		c.mu.Lock()
		c.seen[key] = resp.Header.Get("Content-Type")
		c.mu.Unlock()
	}
	return resp, err
}

func (c *contentTypes) get(key string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[key]
}

// protoClient is a clientset that asks for protobuf as the control
// plane's components do.
func protoClient(t *testing.T, srv *apiservertest.Server) (kubernetes.Interface, *contentTypes) {
	t.Helper()
	return recordingClient(t, srv, protoCT, protoCT+",application/json")
}

const protoCT = "application/vnd.kubernetes.protobuf"

// jsonClient is a clientset that takes JSON only (client-go's typed
// clients ask for protobuf first by default).
func jsonClient(t *testing.T, srv *apiservertest.Server) (kubernetes.Interface, *contentTypes) {
	t.Helper()
	return recordingClient(t, srv, "application/json", "application/json")
}

// recordingClient is a clientset with the given encodings that records
// the responses' content types.
func recordingClient(t *testing.T, srv *apiservertest.Server, contentType, accept string) (kubernetes.Interface, *contentTypes) {
	t.Helper()
	cfg := srv.RESTConfig()
	cfg.ContentType, cfg.AcceptContentTypes = contentType, accept
	ct := &contentTypes{seen: map[string]string{}}
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { ct.rt = rt; return ct }
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, ct
}

// TestProtobufClient: a protobuf client-go gets protobuf objects, lists
// (with selectors and pages) and watch events (with the selector's
// transitions, bookmarks and the 410 of a compacted start), and the
// values it reads are those a JSON client reads.
func TestProtobufClient(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	pc, ct := protoClient(t, srv)
	pods := pc.CoreV1().Pods("default")
	start, err := pods.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := pods.Watch(ctx, metav1.ListOptions{ResourceVersion: start.ResourceVersion, FieldSelector: "spec.nodeName=n1", AllowWatchBookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var created []*corev1.Pod
	for i := range 5 {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("p", i), Labels: map[string]string{"i": fmt.Sprint(i % 2)}},
			Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "img"}}}}
		out, err := pods.Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if out.UID == "" || out.ResourceVersion == "" || out.Spec.RestartPolicy != corev1.RestartPolicyAlways {
			t.Fatalf("create: got uid %q rv %q restartPolicy %q, want set and defaulted", out.UID, out.ResourceVersion, out.Spec.RestartPolicy)
		}
		created = append(created, out)
	}
	for i, p := range created {
		ev := nextEvent(t, w)
		if got := ev.Object.(*corev1.Pod); ev.Type != watch.Added || got.Name != p.Name || got.ResourceVersion != p.ResourceVersion {
			t.Fatalf("watch event %d: got %s %s rv %s, want ADDED %s rv %s", i, ev.Type, got.Name, got.ResourceVersion, p.Name, p.ResourceVersion)
		}
	}
	got, err := pods.Get(ctx, "p0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != created[0].ResourceVersion || got.Spec.Containers[0].Image != "img" {
		t.Errorf("get: rv %s image %s, want rv %s image img", got.ResourceVersion, got.Spec.Containers[0].Image, created[0].ResourceVersion)
	}
	// What a JSON client reads is the same object.
	jc, jct := jsonClient(t, srv)
	jp, err := jc.CoreV1().Pods("default").Get(ctx, "p0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := jct.get("GET /api/v1/namespaces/default/pods/p0"); c != "application/json" {
		t.Errorf("JSON client answered in %q", c)
	}
	jp.TypeMeta = got.TypeMeta
	if a, b := mustJSON(t, jp), mustJSON(t, got); a != b {
		t.Errorf("JSON client read\n%s\nprotobuf client read\n%s", a, b)
	}
	p1 := created[1].DeepCopy()
	p1.Status.Message = "status via protobuf"
	if _, err := pods.UpdateStatus(ctx, p1, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, w); ev.Type != watch.Modified || ev.Object.(*corev1.Pod).Status.Message != p1.Status.Message {
		t.Fatalf("status update: got %s %+v, want MODIFIED with the new status message", ev.Type, ev.Object)
	}
	if err := pods.Delete(ctx, "p2", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, w); ev.Type != watch.Deleted || ev.Object.(*corev1.Pod).Name != "p2" {
		t.Fatalf("delete: got %s %+v, want DELETED p2", ev.Type, ev.Object)
	}
	if c := ct.get("WATCH /api/v1/namespaces/default/pods"); !strings.HasPrefix(c, protoCT) {
		t.Errorf("watch answered in %q, want protobuf", c)
	}

	// Lists: label selector, pages.
	l, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "i=0"})
	if err != nil {
		t.Fatal(err)
	}
	if names := podNames(l.Items); names != "p0,p4" {
		t.Errorf("list i=0: got %s, want p0,p4", names)
	}
	var all []corev1.Pod
	opts := metav1.ListOptions{Limit: 2}
	for {
		page, err := pods.List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Items {
			if p.ResourceVersion == "" {
				t.Errorf("list item %s without resourceVersion", p.Name)
			}
		}
		all = append(all, page.Items...)
		if page.Continue == "" {
			break
		}
		opts.Continue = page.Continue
	}
	if names := podNames(all); names != "p0,p1,p3,p4" {
		t.Errorf("paged list: got %s, want p0,p1,p3,p4", names)
	}
	for _, key := range []string{"GET /api/v1/namespaces/default/pods", "GET /api/v1/namespaces/default/pods/p0", "POST /api/v1/namespaces/default/pods"} {
		if c := ct.get(key); c != protoCT {
			t.Errorf("%s answered in %q, want protobuf", key, c)
		}
	}

	// events.k8s.io/v1 is stored as a core/v1 Event: it is converted,
	// in lists and watches too.
	evs := pc.EventsV1().Events("default")
	ew, err := evs.Watch(ctx, metav1.ListOptions{ResourceVersion: start.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer ew.Stop()
	ev := &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e"}, EventTime: metav1.NewMicroTime(time.Now()), ReportingController: "skiff.dev/test",
		ReportingInstance: "i", Action: "Test", Reason: "Test", Type: "Normal", Regarding: corev1.ObjectReference{Kind: "Pod", Name: "p0", Namespace: "default"}}
	if _, err := evs.Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, ew); e.Type != watch.Added || e.Object.(*eventsv1.Event).ReportingController != "skiff.dev/test" {
		t.Fatalf("events.k8s.io watch: got %s %+v", e.Type, e.Object)
	}
	el, err := evs.List(ctx, metav1.ListOptions{})
	if err != nil || len(el.Items) != 1 || el.Items[0].Regarding.Name != "p0" {
		t.Fatalf("events.k8s.io list: %v %+v", err, el)
	}
	cl, err := pc.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
	if err != nil || len(cl.Items) != 1 || cl.Items[0].InvolvedObject.Name != "p0" {
		t.Fatalf("core/v1 events list: %v %+v", err, cl)
	}

	// A watch from a compacted revision ends with a protobuf 410.
	srv.Compact(t)
	gw, err := pods.Watch(ctx, metav1.ListOptions{ResourceVersion: start.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Stop()
	e := nextEvent(t, gw)
	if st, ok := e.Object.(*metav1.Status); e.Type != watch.Error || !ok || st.Code != http.StatusGone {
		t.Fatalf("watch from compacted revision: got %s %+v, want ERROR 410", e.Type, e.Object)
	}
}

// TestProtobufInformer: an informer over protobuf (initial list, watch
// with bookmarks) ends exactly at the server's state.
func TestProtobufInformer(t *testing.T) {
	srv := apiservertest.Start(t, apiservertest.WithBookmarkInterval(100*time.Millisecond))
	ctx := testCtx(t)
	pc, ct := protoClient(t, srv)
	cms := pc.CoreV1().ConfigMaps("default")
	for i := range 20 {
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("cm", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	f := informers.NewSharedInformerFactoryWithOptions(pc, 0, informers.WithNamespace("default"))
	inf := f.Core().V1().ConfigMaps().Informer()
	stop := make(chan struct{})
	f.Start(stop)
	defer func() {
		close(stop)
		f.Shutdown()
	}()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	for i := range 200 {
		name := fmt.Sprint("cm", i%20)
		cm, err := cms.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data = map[string]string{"n": fmt.Sprint(i)}
		if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cms.Delete(ctx, "cm3", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want, err := cms.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		lr := inf.GetIndexer().ListKeys()
		if len(lr) == len(want.Items) && inf.LastSyncResourceVersion() >= want.ResourceVersion {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("informer has %d objects at %s, server %d at %s", len(lr), inf.LastSyncResourceVersion(), len(want.Items), want.ResourceVersion)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, w := range want.Items {
		o, ok, _ := inf.GetIndexer().GetByKey("default/" + w.Name)
		if !ok || o.(*corev1.ConfigMap).ResourceVersion != w.ResourceVersion || o.(*corev1.ConfigMap).Data["n"] != w.Data["n"] {
			t.Errorf("informer %s: got %+v, want rv %s data %v", w.Name, o, w.ResourceVersion, w.Data)
		}
	}
	if c := ct.get("WATCH /api/v1/namespaces/default/configmaps"); !strings.HasPrefix(c, protoCT) {
		t.Errorf("informer watch answered in %q, want protobuf", c)
	}
}

// TestLegacyJSONValues: an object an older Skiff stored as JSON reads the
// same through JSON and protobuf clients, and its next update stores it
// as protobuf.
func TestLegacyJSONValues(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	cli, err := storage.NewClient(ctx, storage.ClientConfig{Endpoints: []string{srv.EtcdURL()}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	const key = "/registry/configmaps/default/old"
	legacy := `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"old","namespace":"default","uid":"8d1f","creationTimestamp":"2026-01-01T00:00:00Z"},"data":{"a":"1"}}`
	if _, err := cli.Put(ctx, key, legacy); err != nil {
		t.Fatal(err)
	}
	pc, _ := protoClient(t, srv)
	jc, _ := jsonClient(t, srv)
	for name, c := range map[string]kubernetes.Interface{"json": jc, "protobuf": pc} {
		cm, err := c.CoreV1().ConfigMaps("default").Get(ctx, "old", metav1.GetOptions{})
		if err != nil || cm.Data["a"] != "1" || cm.UID != "8d1f" || cm.ResourceVersion == "" {
			t.Fatalf("%s get: %v %+v", name, err, cm)
		}
		l, err := c.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=old"})
		if err != nil || len(l.Items) != 1 || l.Items[0].Data["a"] != "1" {
			t.Fatalf("%s list: %v %+v", name, err, l)
		}
	}
	cm, err := pc.CoreV1().ConfigMaps("default").Get(ctx, "old", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["b"] = "2"
	if _, err := pc.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("etcd get: %v", err)
	}
	if v := resp.Kvs[0].Value; !strings.HasPrefix(string(v), "k8s\x00") {
		t.Errorf("after an update the value is %q, want protobuf", v)
	}
}

// TestProtobufLongList: a protobuf list longer than the server buffers is
// read twice (sized, then sent) and is the same list, whole, filtered and
// in pages, as a JSON client's.
func TestProtobufLongList(t *testing.T) {
	defer apiserver.SetProtoListBuffer(2048)()
	srv := apiservertest.Start(t)
	ctx := testCtx(t)
	pc, ct := protoClient(t, srv)
	jc, _ := jsonClient(t, srv)
	for i := range 40 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm%02d", i), Labels: map[string]string{"odd": fmt.Sprint(i%2 == 1)}},
			Data: map[string]string{"v": strings.Repeat("x", 100+i)}}
		if _, err := pc.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, opts := range []metav1.ListOptions{{}, {LabelSelector: "odd=true"}, {Limit: 25}} {
		var pages [2][]string
		for i, c := range []kubernetes.Interface{pc, jc} {
			o := opts
			for {
				l, err := c.CoreV1().ConfigMaps("default").List(ctx, o)
				if err != nil {
					t.Fatalf("list %+v: %v", o, err)
				}
				for _, cm := range l.Items {
					pages[i] = append(pages[i], cm.Name+"@"+cm.ResourceVersion+"="+cm.Data["v"])
				}
				if l.Continue == "" {
					break
				}
				pages[i] = append(pages[i], "|")
				o.Continue = l.Continue
			}
		}
		if a, b := strings.Join(pages[0], ","), strings.Join(pages[1], ","); a != b || len(pages[0]) < 20 {
			t.Errorf("list %+v: protobuf\n%s\nJSON\n%s", opts, a, b)
		}
	}
	if c := ct.get("GET /api/v1/namespaces/default/configmaps"); c != protoCT {
		t.Errorf("list answered in %q, want protobuf", c)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func podNames(ps []corev1.Pod) string {
	var n []string
	for _, p := range ps {
		n = append(n, p.Name)
	}
	return strings.Join(n, ",")
}
