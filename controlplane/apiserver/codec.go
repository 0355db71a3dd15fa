package apiserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// readBody reads the request body, refusing more than MaxBodyBytes.
func readBody(c *gin.Context) ([]byte, error) {
	if c.Request.ContentLength > MaxBodyBytes {
		return nil, tooLarge()
	}
	data, err := io.ReadAll(io.LimitReader(c.Request.Body, MaxBodyBytes+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge()
		}
		return nil, badRequest("error reading request body: %v", err)
	}
	if len(data) > MaxBodyBytes {
		return nil, tooLarge()
	}
	return data, nil
}

// mediaType returns the request's media type without parameters.
func mediaType(c *gin.Context) string {
	ct := c.GetHeader("Content-Type")
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return strings.TrimSpace(strings.ToLower(ct))
	}
	return mt
}

// bodyJSON reads the body of a create or update and returns it as JSON.
// strict reports duplicate keys in YAML as strict errors.
func bodyJSON(c *gin.Context) ([]byte, []error, error) {
	mt := mediaType(c)
	switch mt {
	case "", "application/json", "*/*":
	case "application/yaml", "application/x-yaml", "text/yaml":
	default:
		return nil, nil, unsupportedMediaType(c.GetHeader("Content-Type"))
	}
	data, err := readBody(c)
	if err != nil {
		return nil, nil, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil, badRequest("request body is empty")
	}
	if mt == "application/json" || mt == "" || mt == "*/*" {
		return data, nil, nil
	}
	return yamlToJSON(data)
}

// yamlToJSON converts YAML to JSON; duplicate keys are strict errors.
func yamlToJSON(data []byte) ([]byte, []error, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err == nil {
		return js, nil, nil
	}
	js, err2 := yaml.YAMLToJSON(data)
	if err2 != nil {
		return nil, nil, badRequest("error converting YAML to JSON: %v", err2)
	}
	return js, []error{err}, nil
}

// fieldValidation returns the request's fieldValidation directive
// (kube-apiserver's default is Warn).
func fieldValidation(c *gin.Context) (string, error) {
	v := c.Query("fieldValidation")
	switch v {
	case "":
		return metav1.FieldValidationWarn, nil
	case metav1.FieldValidationStrict, metav1.FieldValidationWarn, metav1.FieldValidationIgnore:
		return v, nil
	}
	return "", badRequest("fieldValidation must be one of Ignore, Warn, Strict (got %q)", v)
}

const protobufType = "application/vnd.kubernetes.protobuf"

// readObject reads the request body (JSON, YAML or Kubernetes protobuf,
// which client-go's typed clients send) into into.
func (s *Server) readObject(c *gin.Context, into runtime.Object, want schema.GroupVersionKind, directive string) error {
	if mediaType(c) == protobufType {
		data, err := readBody(c)
		if err != nil {
			return err
		}
		out, gvk, err := s.proto.Decode(data, &want, into)
		if err != nil {
			return badRequest("%s in version %q cannot be handled as a %s: %v", want.Kind, want.Version, want.Kind, err)
		}
		if gvk == nil || *gvk != want || out != into {
			return badRequest("%s in version %q cannot be handled as a %s: unexpected kind %v", want.Kind, want.Version, want.Kind, gvk)
		}
		into.GetObjectKind().SetGroupVersionKind(want)
		return nil
	}
	data, pre, err := bodyJSON(c)
	if err != nil {
		return err
	}
	return decodeObject(c, data, into, want, directive, pre)
}

// decodeObject decodes a client's JSON into a new object of the resource.
// It checks apiVersion and kind against want (missing ones are taken from
// want) and applies the field validation directive to unknown and
// duplicate fields.
func decodeObject(c *gin.Context, data []byte, into runtime.Object, want schema.GroupVersionKind, directive string, pre []error) error {
	var tm metav1.TypeMeta
	if err := json.Unmarshal(data, &tm); err != nil {
		return badRequest("%s in version %q cannot be handled as a %s: %v", want.Kind, want.Version, want.Kind, decodeErrText(err))
	}
	gvk := schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind)
	if tm.APIVersion == "" {
		gvk.Group, gvk.Version = want.Group, want.Version
	}
	if tm.Kind == "" {
		gvk.Kind = want.Kind
	}
	if gvk != want {
		return badRequest("%s in version %q cannot be handled as a %s: the object's kind and apiVersion (%s) do not match the expected %s",
			gvk.Kind, gvk.Version, want.Kind, gvk, want)
	}
	strictErrs, err := kjson.UnmarshalStrict(data, into, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return badRequest("%s in version %q cannot be handled as a %s: %v", want.Kind, want.Version, want.Kind, decodeErrText(err))
	}
	strictErrs = append(pre, strictErrs...)
	if len(strictErrs) > 0 {
		switch directive {
		case metav1.FieldValidationStrict:
			return badRequest("%s in version %q cannot be handled as a %s: %v", want.Kind, want.Version, want.Kind, runtime.NewStrictDecodingError(strictErrs))
		case metav1.FieldValidationWarn:
			for _, e := range strictErrs {
				addWarning(c, e.Error())
			}
		}
	}
	into.GetObjectKind().SetGroupVersionKind(want)
	return nil
}

func decodeErrText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("couldn't get version/kind; json parse error: %v", err)
	}
	return err.Error()
}

// addWarning adds a Warning header as kube-apiserver does (code 299).
func addWarning(c *gin.Context, text string) {
	c.Writer.Header().Add("Warning", "299 - "+strconv.Quote(text))
}

// writeJSON writes v as the JSON response with status code.
func writeJSON(c *gin.Context, code int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		data = []byte(`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"encoding response failed","reason":"InternalError","code":500}`)
	}
	c.Header("Content-Type", "application/json")
	c.Status(code)
	_, _ = c.Writer.Write(data)
	_, _ = c.Writer.Write([]byte("\n"))
}

// acceptKind is what the client asked to receive.
type acceptKind int

const (
	acceptObject acceptKind = iota
	acceptTable
	acceptPartialMetadata
	acceptPartialMetadataList
	acceptDiscoveryAggregated
)

// negotiate parses the Accept header: the first acceptable media range
// wins. It returns 406 when none is acceptable.
func negotiate(c *gin.Context) (acceptKind, error) {
	k, _, err := negotiateWire(c)
	return k, err
}

// negotiateWire is negotiate that also says in which encoding: protobuf
// when the client asked for it first (client-go's typed clients and
// informers, configured as kube-controller-manager's are), for objects,
// lists and watches; Tables and metadata are JSON only.
func negotiateWire(c *gin.Context) (acceptKind, wire, error) {
	h := c.GetHeader("Accept")
	if strings.TrimSpace(h) == "" {
		return acceptObject, wireJSON, nil
	}
	for _, part := range strings.Split(h, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/json", "application/yaml", "*/*", "application/*":
		case protobufType:
			if params["as"] == "" {
				return acceptObject, wireProto, nil
			}
			continue
		default:
			continue
		}
		as := params["as"]
		switch {
		case as == "":
			return acceptObject, wireJSON, nil
		case as == "Table" && params["g"] == "meta.k8s.io" && (params["v"] == "v1" || params["v"] == "v1beta1"):
			return acceptTable, wireJSON, nil
		case as == "PartialObjectMetadata" && params["g"] == "meta.k8s.io" && (params["v"] == "v1" || params["v"] == "v1beta1"):
			return acceptPartialMetadata, wireJSON, nil
		case as == "PartialObjectMetadataList" && params["g"] == "meta.k8s.io" && (params["v"] == "v1" || params["v"] == "v1beta1"):
			return acceptPartialMetadataList, wireJSON, nil
		case as == "APIGroupDiscoveryList" && params["g"] == "apidiscovery.k8s.io" && params["v"] == "v2":
			return acceptDiscoveryAggregated, wireJSON, nil
		}
	}
	return 0, 0, notAcceptable()
}
