package access

import (
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// APIGroup and Resource name what the services authorize in Kubernetes
// terms: a SubjectAccessReview asks whether the caller may <verb> the
// resource "applications" in the API group "sparkpods.io", in the request's
// namespace, named by its application id. No such API is served; RBAC rules
// may name any group and resource, so ordinary Roles grant access:
//
//	rules:
//	- apiGroups: ["sparkpods.io"]
//	  resources: ["applications"]
//	  verbs: ["get", "list", "watch"]          # read-only inspection
//	- apiGroups: ["sparkpods.io"]
//	  resources: ["applications"]
//	  verbs: ["create", "update", "delete"]    # a scheduler client
const (
	APIGroup = "sparkpods.io"
	Resource = "applications"
)

// Rule says who may call one gRPC method.
type Rule struct {
	// Public methods need no identity at all: the health service, which
	// load balancers and probes call.
	Public bool
	// Authenticated methods need any authenticated caller: server
	// reflection, so grpcurl can list what a server offers.
	Authenticated bool
	// TrustedOnly methods accept only the trusted callers (PodService: the
	// allocator and lifecycle services).
	TrustedOnly bool
	// Verb is checked with a SubjectAccessReview on sparkpods.io/applications
	// in the request's namespace for callers that are not trusted.
	Verb string
}

// Rules is the access rule of every method the sparkpods services serve.
// A method missing here is refused: new RPCs are closed until given a rule.
var Rules = map[string]Rule{
	healthpb.Health_Check_FullMethodName:                             {Public: true},
	healthpb.Health_Watch_FullMethodName:                             {Public: true},
	healthpb.Health_List_FullMethodName:                              {Public: true},
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      {Authenticated: true},
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": {Authenticated: true},

	sparkpodsv1.SnapshotService_GetSnapshot_FullMethodName:      {Verb: "get"},
	sparkpodsv1.SnapshotService_ListApplications_FullMethodName: {Verb: "list"},
	sparkpodsv1.SnapshotService_WatchSnapshots_FullMethodName:   {Verb: "watch"},

	sparkpodsv1.SchedulerService_RegisterApplication_FullMethodName:       {Verb: "create"},
	sparkpodsv1.SchedulerService_UnregisterApplication_FullMethodName:     {Verb: "delete"},
	sparkpodsv1.SchedulerService_GetApplication_FullMethodName:            {Verb: "get"},
	sparkpodsv1.SchedulerService_SetExecutorTargets_FullMethodName:        {Verb: "update"},
	sparkpodsv1.SchedulerService_KillExecutors_FullMethodName:             {Verb: "update"},
	sparkpodsv1.SchedulerService_DecommissionExecutors_FullMethodName:     {Verb: "update"},
	sparkpodsv1.SchedulerService_ReportRegisteredExecutors_FullMethodName: {Verb: "update"},
	sparkpodsv1.SchedulerService_ListExecutors_FullMethodName:             {Verb: "get"},
	sparkpodsv1.SchedulerService_IsExecutorDeleted_FullMethodName:         {Verb: "get"},

	sparkpodsv1.LifecycleService_WatchExecutorEvents_FullMethodName:       {Verb: "watch"},
	sparkpodsv1.LifecycleService_ListExecutorEvents_FullMethodName:        {Verb: "get"},
	sparkpodsv1.LifecycleService_AcknowledgeExecutorEvents_FullMethodName: {Verb: "update"},

	sparkpodsv1.PodService_CreateExecutorPods_FullMethodName: {TrustedOnly: true},
	sparkpodsv1.PodService_DeleteExecutorPods_FullMethodName: {TrustedOnly: true},
	sparkpodsv1.PodService_LabelExecutorPods_FullMethodName:  {TrustedOnly: true},
}
