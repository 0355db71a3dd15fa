package framework

import (
	"errors"
	"strings"
)

// Code is the outcome of running a plugin.
type Code int

// The codes a plugin can return. They mirror the scheduling framework's codes
// in Kubernetes, so that their meaning carries over.
const (
	// Success means the plugin ran and the pod may proceed. A nil *Status is
	// also a success.
	Success Code = iota
	// Error is an internal error: the pod goes to the backoff queue and is
	// retried, and no node is blamed.
	Error
	// Unschedulable means the pod does not fit now, but preemption or a
	// change in the cluster may make it fit.
	Unschedulable
	// UnschedulableAndUnresolvable means the pod does not fit and removing
	// pods from the node would not help.
	UnschedulableAndUnresolvable
	// Wait is returned by Permit plugins to hold a pod before binding.
	Wait
	// Skip is returned by PreFilter and PreScore to say that the plugin's
	// Filter or Score has nothing to do for this pod and can be skipped; by
	// Bind to pass the pod to the next bind plugin.
	Skip
)

var codeNames = [...]string{"Success", "Error", "Unschedulable", "UnschedulableAndUnresolvable", "Wait", "Skip"}

// String returns the code's name.
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "Unknown"
}

// Status is the result of running a plugin: a code, the reasons a node was
// rejected, an optional error, and the plugin that produced it. A nil Status
// means Success.
type Status struct {
	code    Code
	reasons []string
	err     error
	plugin  string
}

// NewStatus returns a status with the given code and reasons.
func NewStatus(code Code, reasons ...string) *Status {
	return &Status{code: code, reasons: reasons}
}

// AsStatus wraps an error in a status with code Error; nil gives nil.
func AsStatus(err error) *Status {
	if err == nil {
		return nil
	}
	return &Status{code: Error, reasons: []string{err.Error()}, err: err}
}

// Code returns the status code; Success for nil.
func (s *Status) Code() Code {
	if s == nil {
		return Success
	}
	return s.code
}

// Reasons returns the reasons; for an error status the error message.
func (s *Status) Reasons() []string {
	if s == nil {
		return nil
	}
	return s.reasons
}

// Message joins the reasons with ", ".
func (s *Status) Message() string {
	if s == nil {
		return ""
	}
	return strings.Join(s.reasons, ", ")
}

// Plugin returns the name of the plugin that produced the status, if the
// framework recorded it.
func (s *Status) Plugin() string {
	if s == nil {
		return ""
	}
	return s.plugin
}

// WithPlugin records the plugin that produced the status and returns s.
// A status that already names the plugin is not written to, so plugins may
// return one shared, pre-built status (see NewPluginStatus) from Filter
// calls that run in parallel.
func (s *Status) WithPlugin(name string) *Status {
	if s != nil && s.plugin != name {
		s.plugin = name
	}
	return s
}

// NewPluginStatus returns a status that names its plugin. Plugins build the
// statuses of their common rejections once and return them from Filter, to
// keep the per-node path free of allocations; such a status must not be
// changed afterwards.
func NewPluginStatus(plugin string, code Code, reasons ...string) *Status {
	return &Status{code: code, reasons: reasons, plugin: plugin}
}

// WithError attaches err to s and returns s.
func (s *Status) WithError(err error) *Status {
	if s != nil {
		s.err = err
		if len(s.reasons) == 0 && err != nil {
			s.reasons = []string{err.Error()}
		}
	}
	return s
}

// IsSuccess reports whether the status is nil or Success.
func (s *Status) IsSuccess() bool { return s.Code() == Success }

// IsSkip reports whether the code is Skip.
func (s *Status) IsSkip() bool { return s.Code() == Skip }

// IsWait reports whether the code is Wait.
func (s *Status) IsWait() bool { return s.Code() == Wait }

// IsRejected reports whether the pod was rejected: Unschedulable or
// UnschedulableAndUnresolvable.
func (s *Status) IsRejected() bool {
	c := s.Code()
	return c == Unschedulable || c == UnschedulableAndUnresolvable
}

// AsError returns the status as an error: nil on success or skip, the
// attached error when there is one, otherwise the message.
func (s *Status) AsError() error {
	if s.IsSuccess() || s.IsSkip() {
		return nil
	}
	if s.err != nil {
		return s.err
	}
	return errors.New(s.Message())
}

// String is the code and message, for logs.
func (s *Status) String() string {
	if s == nil {
		return "Success"
	}
	if len(s.reasons) == 0 {
		return s.code.String()
	}
	return s.code.String() + ": " + s.Message()
}
