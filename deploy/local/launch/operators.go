package launch

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// OperatorGroup is the group (certificate organization) of the local
// operator identities that GrantOperators lets act on every application.
const OperatorGroup = "sparkpods:local-operators"

// operatorRole names the ClusterRole and ClusterRoleBinding GrantOperators
// keeps.
const operatorRole = "sparkpods-local-operator"

// GrantOperators lets OperatorGroup do everything on sparkpods.io
// applications in every namespace, with a ClusterRole and a
// ClusterRoleBinding, so that the services' SubjectAccessReviews allow a
// local operator's certificate (sparkpodsctl, grpcurl, the demo's
// simulated driver). It is idempotent.
func GrantOperators(ctx context.Context, kube kubernetes.Interface) error {
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: operatorRole},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"sparkpods.io"},
			Resources: []string{"applications"},
			Verbs:     []string{"get", "list", "watch", "create", "update", "delete"},
		}},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: operatorRole},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: operatorRole},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: OperatorGroup}},
	}
	roles := kube.RbacV1().ClusterRoles()
	if _, err := roles.Create(ctx, role, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		_, err = roles.Update(ctx, role, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("launch: update ClusterRole %s: %w", operatorRole, err)
		}
	} else if err != nil {
		return fmt.Errorf("launch: create ClusterRole %s: %w", operatorRole, err)
	}
	bindings := kube.RbacV1().ClusterRoleBindings()
	if _, err := bindings.Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("launch: create ClusterRoleBinding %s: %w", operatorRole, err)
	}
	return nil
}
