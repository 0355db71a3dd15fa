package core

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-project/skiff/controlplane/registry/objectmeta"
	"github.com/skiff-project/skiff/controlplane/registry/table"
)

// MaxSecretSize is the largest total size of a Secret's or ConfigMap's data
// (core.MaxSecretSize, 1 MiB).
const MaxSecretSize = 1 * 1024 * 1024

const immutableWhenSetMsg = "field is immutable when `immutable` is set"

// ConfigMapStrategy holds the rules of configmaps.
type ConfigMapStrategy struct{}

// Default applies the configmap defaults.
func (ConfigMapStrategy) Default(obj runtime.Object) { DefaultConfigMap(obj.(*corev1.ConfigMap)) }

// PrepareForCreate does nothing: configmaps have no status.
func (ConfigMapStrategy) PrepareForCreate(context.Context, runtime.Object) {}

// PrepareForUpdate does nothing: configmaps have no status.
func (ConfigMapStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

// Validate checks a new configmap: key names and the total size.
func (ConfigMapStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validateConfigMap(obj.(*corev1.ConfigMap))
}

func validateConfigMap(cm *corev1.ConfigMap) field.ErrorList {
	allErrs := objectmeta.Validate(&cm.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	total := 0
	for _, key := range slices.Sorted(maps.Keys(cm.Data)) {
		for _, msg := range validation.IsConfigMapKey(key) {
			allErrs = append(allErrs, field.Invalid(field.NewPath("data").Key(key), key, msg))
		}
		if _, dup := cm.BinaryData[key]; dup {
			allErrs = append(allErrs, field.Invalid(field.NewPath("data").Key(key), key, "duplicate of key present in binaryData"))
		}
		total += len(cm.Data[key])
	}
	for _, key := range slices.Sorted(maps.Keys(cm.BinaryData)) {
		for _, msg := range validation.IsConfigMapKey(key) {
			allErrs = append(allErrs, field.Invalid(field.NewPath("binaryData").Key(key), key, msg))
		}
		total += len(cm.BinaryData[key])
	}
	if total > MaxSecretSize {
		allErrs = append(allErrs, field.TooLong(field.NewPath(""), "", MaxSecretSize))
	}
	return allErrs
}

// ValidateUpdate checks a configmap update; an immutable configmap's data
// cannot change.
func (ConfigMapStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	cm, oldCM := obj.(*corev1.ConfigMap), old.(*corev1.ConfigMap)
	allErrs := objectmeta.ValidateUpdate(&cm.ObjectMeta, &oldCM.ObjectMeta, field.NewPath("metadata"))
	if oldCM.Immutable != nil && *oldCM.Immutable {
		if cm.Immutable == nil || !*cm.Immutable {
			allErrs = append(allErrs, field.Forbidden(field.NewPath("immutable"), immutableWhenSetMsg))
		}
		if !apiequality.Semantic.DeepEqual(cm.Data, oldCM.Data) {
			allErrs = append(allErrs, field.Forbidden(field.NewPath("data"), immutableWhenSetMsg))
		}
		if !apiequality.Semantic.DeepEqual(cm.BinaryData, oldCM.BinaryData) {
			allErrs = append(allErrs, field.Forbidden(field.NewPath("binaryData"), immutableWhenSetMsg))
		}
	}
	return append(allErrs, validateConfigMap(cm)...)
}

// AllowCreateOnUpdate is false for configmaps.
func (ConfigMapStrategy) AllowCreateOnUpdate() bool { return false }

// SelectableFields returns the metadata fields.
func (ConfigMapStrategy) SelectableFields(obj runtime.Object) fields.Set {
	return objectmeta.Fields(&obj.(*corev1.ConfigMap).ObjectMeta, true)
}

// ConvertToTable renders configmaps with their DATA count.
func (ConfigMapStrategy) ConvertToTable(_ context.Context, obj runtime.Object, opts *metav1.TableOptions) (*metav1.Table, error) {
	return table.Printer{
		Columns: []metav1.TableColumnDefinition{table.NameColumn(), table.Column("Data", "string", corev1.ConfigMap{}.SwaggerDoc()["data"]), table.AgeColumn()},
		Row: func(obj runtime.Object) (metav1.TableRow, error) {
			cm, ok := obj.(*corev1.ConfigMap)
			if !ok {
				return metav1.TableRow{}, fmt.Errorf("configmap table: unexpected object %T", obj)
			}
			return metav1.TableRow{Cells: []any{cm.Name, int64(len(cm.Data) + len(cm.BinaryData)), table.Age(cm.CreationTimestamp)}}, nil
		},
	}.Convert(obj, opts)
}

// SecretStrategy holds the rules of secrets.
type SecretStrategy struct{}

// Default applies the secret defaults and merges stringData into data (the
// v1 conversion: stringData wins over data for the same key).
func (SecretStrategy) Default(obj runtime.Object) {
	s := obj.(*corev1.Secret)
	DefaultSecret(s)
	if len(s.StringData) > 0 {
		if s.Data == nil {
			s.Data = make(map[string][]byte, len(s.StringData))
		}
		for k, v := range s.StringData {
			s.Data[k] = []byte(v)
		}
	}
	s.StringData = nil
}

// PrepareForCreate does nothing: secrets have no status.
func (SecretStrategy) PrepareForCreate(context.Context, runtime.Object) {}

// PrepareForUpdate keeps the old type when the update leaves it empty.
func (SecretStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	s := obj.(*corev1.Secret)
	if s.Type == "" {
		s.Type = old.(*corev1.Secret).Type
	}
}

// Validate checks a new secret: key names, total size and the keys its
// type requires.
func (SecretStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validateSecret(obj.(*corev1.Secret))
}

func validateSecret(s *corev1.Secret) field.ErrorList {
	allErrs := objectmeta.Validate(&s.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	dataPath := field.NewPath("data")
	total := 0
	for _, key := range slices.Sorted(maps.Keys(s.Data)) {
		for _, msg := range validation.IsConfigMapKey(key) {
			allErrs = append(allErrs, field.Invalid(dataPath.Key(key), key, msg))
		}
		total += len(s.Data[key])
	}
	if total > MaxSecretSize {
		allErrs = append(allErrs, field.TooLong(dataPath, "", MaxSecretSize))
	}
	switch s.Type {
	case corev1.SecretTypeServiceAccountToken:
		if s.Annotations[corev1.ServiceAccountNameKey] == "" {
			allErrs = append(allErrs, field.Required(field.NewPath("metadata", "annotations").Key(corev1.ServiceAccountNameKey), ""))
		}
	case corev1.SecretTypeDockercfg, corev1.SecretTypeDockerConfigJson:
		key := corev1.DockerConfigKey
		if s.Type == corev1.SecretTypeDockerConfigJson {
			key = corev1.DockerConfigJsonKey
		}
		b, ok := s.Data[key]
		if !ok {
			allErrs = append(allErrs, field.Required(dataPath.Key(key), ""))
			break
		}
		if err := json.Unmarshal(b, &map[string]any{}); err != nil {
			allErrs = append(allErrs, field.Invalid(dataPath.Key(key), "<secret contents redacted>", err.Error()))
		}
	case corev1.SecretTypeBasicAuth:
		_, user := s.Data[corev1.BasicAuthUsernameKey]
		_, pass := s.Data[corev1.BasicAuthPasswordKey]
		if !user && !pass {
			allErrs = append(allErrs, field.Required(dataPath.Key(corev1.BasicAuthUsernameKey), ""),
				field.Required(dataPath.Key(corev1.BasicAuthPasswordKey), ""))
		}
	case corev1.SecretTypeSSHAuth:
		if len(s.Data[corev1.SSHAuthPrivateKey]) == 0 {
			allErrs = append(allErrs, field.Required(dataPath.Key(corev1.SSHAuthPrivateKey), ""))
		}
	case corev1.SecretTypeTLS:
		if _, ok := s.Data[corev1.TLSCertKey]; !ok {
			allErrs = append(allErrs, field.Required(dataPath.Key(corev1.TLSCertKey), ""))
		}
		if _, ok := s.Data[corev1.TLSPrivateKeyKey]; !ok {
			allErrs = append(allErrs, field.Required(dataPath.Key(corev1.TLSPrivateKeyKey), ""))
		}
	}
	return allErrs
}

// ValidateUpdate checks a secret update: the type is immutable, and so is
// the data of an immutable secret.
func (SecretStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	s, oldS := obj.(*corev1.Secret), old.(*corev1.Secret)
	allErrs := objectmeta.ValidateUpdate(&s.ObjectMeta, &oldS.ObjectMeta, field.NewPath("metadata"))
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(s.Type, oldS.Type, field.NewPath("type"))...)
	if oldS.Immutable != nil && *oldS.Immutable {
		if s.Immutable == nil || !*s.Immutable {
			allErrs = append(allErrs, field.Forbidden(field.NewPath("immutable"), immutableWhenSetMsg))
		}
		if !apiequality.Semantic.DeepEqual(s.Data, oldS.Data) {
			allErrs = append(allErrs, field.Forbidden(field.NewPath("data"), immutableWhenSetMsg))
		}
	}
	return append(allErrs, validateSecret(s)...)
}

// AllowCreateOnUpdate is false for secrets.
func (SecretStrategy) AllowCreateOnUpdate() bool { return false }

// SelectableFields returns the metadata fields and type.
func (SecretStrategy) SelectableFields(obj runtime.Object) fields.Set {
	s := obj.(*corev1.Secret)
	return objectmeta.AddFields(fields.Set{"type": string(s.Type)}, &s.ObjectMeta, true)
}

// ConvertToTable renders secrets with their TYPE and DATA count.
func (SecretStrategy) ConvertToTable(_ context.Context, obj runtime.Object, opts *metav1.TableOptions) (*metav1.Table, error) {
	doc := corev1.Secret{}.SwaggerDoc()
	return table.Printer{
		Columns: []metav1.TableColumnDefinition{table.NameColumn(), table.Column("Type", "string", doc["type"]), table.Column("Data", "string", doc["data"]), table.AgeColumn()},
		Row: func(obj runtime.Object) (metav1.TableRow, error) {
			s, ok := obj.(*corev1.Secret)
			if !ok {
				return metav1.TableRow{}, fmt.Errorf("secret table: unexpected object %T", obj)
			}
			return metav1.TableRow{Cells: []any{s.Name, string(s.Type), int64(len(s.Data)), table.Age(s.CreationTimestamp)}}, nil
		},
	}.Convert(obj, opts)
}

// ServiceAccountStrategy holds the rules of serviceaccounts.
type ServiceAccountStrategy struct{}

// Default does nothing: service accounts have no defaults.
func (ServiceAccountStrategy) Default(runtime.Object) {}

// PrepareForCreate keeps only the names of referenced secrets.
func (ServiceAccountStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	cleanSecretReferences(obj.(*corev1.ServiceAccount))
}

// PrepareForUpdate keeps only the names of referenced secrets.
func (ServiceAccountStrategy) PrepareForUpdate(_ context.Context, obj, _ runtime.Object) {
	cleanSecretReferences(obj.(*corev1.ServiceAccount))
}

func cleanSecretReferences(sa *corev1.ServiceAccount) {
	for i, s := range sa.Secrets {
		sa.Secrets[i] = corev1.ObjectReference{Name: s.Name}
	}
}

// Validate checks a new service account's metadata.
func (ServiceAccountStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	sa := obj.(*corev1.ServiceAccount)
	return objectmeta.Validate(&sa.ObjectMeta, true, apivalidation.ValidateServiceAccountName, field.NewPath("metadata"))
}

// ValidateUpdate checks a service account update.
func (ServiceAccountStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	sa, oldSA := obj.(*corev1.ServiceAccount), old.(*corev1.ServiceAccount)
	allErrs := objectmeta.ValidateUpdate(&sa.ObjectMeta, &oldSA.ObjectMeta, field.NewPath("metadata"))
	return append(allErrs, objectmeta.Validate(&sa.ObjectMeta, true, apivalidation.ValidateServiceAccountName, field.NewPath("metadata"))...)
}

// AllowCreateOnUpdate is false for service accounts.
func (ServiceAccountStrategy) AllowCreateOnUpdate() bool { return false }

// SelectableFields returns the metadata fields.
func (ServiceAccountStrategy) SelectableFields(obj runtime.Object) fields.Set {
	return objectmeta.Fields(&obj.(*corev1.ServiceAccount).ObjectMeta, true)
}

// ConvertToTable renders service accounts (NAME, AGE).
func (ServiceAccountStrategy) ConvertToTable(_ context.Context, obj runtime.Object, opts *metav1.TableOptions) (*metav1.Table, error) {
	return table.Printer{
		Columns: []metav1.TableColumnDefinition{table.NameColumn(), table.AgeColumn()},
		Row: func(obj runtime.Object) (metav1.TableRow, error) {
			sa, ok := obj.(*corev1.ServiceAccount)
			if !ok {
				return metav1.TableRow{}, fmt.Errorf("serviceaccount table: unexpected object %T", obj)
			}
			return metav1.TableRow{Cells: []any{sa.Name, table.Age(sa.CreationTimestamp)}}, nil
		},
	}.Convert(obj, opts)
}
