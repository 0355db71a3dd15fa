// Package core holds the rules of the core/v1 resources Skiff serves:
// namespaces, nodes, pods, services, endpoints, configmaps, secrets,
// serviceaccounts and events. For each there is a strategy (defaulting,
// create and update preparation, validation, field selectors and the table
// kubectl prints), written for the k8s.io/api v1 types after kube-apiserver's
// pkg/apis/core/v1 defaults, pkg/apis/core/validation and
// pkg/registry/core/*/strategy.go.
//
// The pod spec rules (DefaultPodSpec, ValidatePodTemplateSpec) are exported
// for the workload resources in package apps.
package core
