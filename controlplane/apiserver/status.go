package apiserver

import (
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"

	"github.com/gin-gonic/gin"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-project/skiff/controlplane/storage"
)

func stack() string { return string(debug.Stack()) }

func unauthorized() error {
	return apierrors.NewUnauthorized("Unauthorized")
}

func internalError(err error) error {
	return apierrors.NewInternalError(err)
}

func badRequest(format string, args ...any) error {
	return apierrors.NewBadRequest(fmt.Sprintf(format, args...))
}

func notFoundPath() error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusNotFound, Reason: metav1.StatusReasonNotFound,
		Message: "the server could not find the requested resource",
		Details: &metav1.StatusDetails{},
	}}
}

func methodNotSupported(gr schema.GroupResource, verb string) error {
	return apierrors.NewMethodNotSupported(gr, verb)
}

func unsupportedMediaType(ct string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType, Reason: metav1.StatusReasonUnsupportedMediaType,
		Message: fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got %q)", ct),
	}}
}

func notAcceptable() error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusNotAcceptable, Reason: metav1.StatusReasonNotAcceptable,
		Message: "only the following media types are accepted: application/json, application/yaml",
	}}
}

func tooLarge() error {
	return apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", MaxBodyBytes))
}

func conflictModified(gr schema.GroupResource, name string) error {
	return apierrors.NewConflict(gr, name, errors.New(registryConflictMsg))
}

const registryConflictMsg = "the object has been modified; please apply your changes to the latest version and try again"

// storageError maps a storage error for an object to its API error.
func storageError(err error, gr schema.GroupResource, name string) error {
	var se *apierrors.StatusError
	switch {
	case errors.As(err, &se):
		return se
	case errors.Is(err, storage.ErrNotFound):
		return apierrors.NewNotFound(gr, name)
	case errors.Is(err, storage.ErrExists):
		return apierrors.NewAlreadyExists(gr, name)
	case errors.Is(err, storage.ErrConflict):
		return conflictModified(gr, name)
	case errors.Is(err, storage.ErrCompacted):
		return apierrors.NewResourceExpired("The resourceVersion for the provided list is too old.")
	case errors.Is(err, storage.ErrFutureRevision):
		return apierrors.NewTimeoutError("Too large resource version", 1)
	}
	return apierrors.NewInternalError(err)
}

// toStatus turns any error into the Status sent to the client.
func toStatus(err error) *metav1.Status {
	var api apierrors.APIStatus
	if errors.As(err, &api) {
		st := api.Status()
		if st.Status == "" {
			st.Status = metav1.StatusFailure
		}
		if st.Code == 0 {
			st.Code = http.StatusInternalServerError
		}
		return &st
	}
	st := apierrors.NewInternalError(err).Status()
	return &st
}

func writeError(c *gin.Context, err error) {
	st := toStatus(err)
	st.Kind, st.APIVersion = "Status", "v1"
	if st.Code == http.StatusInternalServerError {
		if l, ok := c.Get(logKey); ok {
			l.(logger).Error("internal error", "method", c.Request.Method, "path", c.Request.URL.Path, "err", err)
		}
	}
	if st.Code == http.StatusTooManyRequests || (st.Details != nil && st.Details.RetryAfterSeconds > 0) {
		if st.Details != nil && st.Details.RetryAfterSeconds > 0 {
			c.Header("Retry-After", fmt.Sprint(st.Details.RetryAfterSeconds))
		}
	}
	writeJSON(c, int(st.Code), st)
}

// logger is the part of *slog.Logger that writeError uses.
type logger interface {
	Error(msg string, args ...any)
}

const logKey = "skiff.log"
