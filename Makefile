# sparkpods — Spark's Kubernetes executor management as gRPC services.
#
# Every tool this Makefile needs is built from the Go module proxy at a pinned
# version into an ignored folder: development tools into .local/tools/bin, the
# local control plane (etcd, kube-apiserver, kube-scheduler,
# kube-controller-manager, kubectl, kwok) and our own binaries into bin/.
# Targets rebuild a tool only when its pin changes.

SHELL := /usr/bin/env bash -o pipefail -e
.DEFAULT_GOAL := help

# --- pins -------------------------------------------------------------------
K8S_VERSION              := 1.37.2
KWOK_VERSION             := v0.8.0
BUF_VERSION              := v1.75.0
PROTOC_GEN_GO_VERSION    := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GRPCURL_VERSION          := v1.9.4
GOLANGCI_LINT_VERSION    := v2.15.0

# --- folders ----------------------------------------------------------------
BIN        := $(CURDIR)/bin
LOCAL      := $(CURDIR)/.local
TOOLS_BIN  := $(LOCAL)/tools/bin
STAMPS     := $(LOCAL)/tools/stamps
export PATH := $(TOOLS_BIN):$(BIN):$(PATH)
export SPARKPODS_BIN := $(BIN)

K8S_LDFLAGS := -s -w \
  -X k8s.io/component-base/version.gitVersion=v$(K8S_VERSION) \
  -X k8s.io/component-base/version.gitMajor=1 \
  -X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(K8S_VERSION))) \
  -X k8s.io/component-base/version.gitTreeState=clean \
  -X k8s.io/client-go/pkg/version.gitVersion=v$(K8S_VERSION)
K8S_CMDS     := kube-apiserver kube-controller-manager kube-scheduler kubectl
CLUSTER_BINS := $(addprefix $(BIN)/,$(K8S_CMDS) etcd kwok)

GO_TEST_FLAGS ?= -race -count=1 -timeout 20m

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
	  /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

.PHONY: all
all: generate lint build test ## Generate, lint, build and test.

##@ Main job

.PHONY: run
run: tools cluster-bins build ## Run the demo: local control plane, the four services, a Spark application's life.
	go run ./deploy/local/demo $(RUN_ARGS)

##@ Development

.PHONY: generate
generate: tools ## Regenerate Go code from proto/ (buf with local plugins).
	buf format -w
	buf generate

.PHONY: check-generated
check-generated: generate ## Fail if generated code is not what is committed.
	@if [ -n "$$(git status --porcelain -- proto)" ]; then \
	  git status --porcelain -- proto; git diff --stat -- proto; \
	  echo "generated code drifted: run 'make generate' and commit the result" >&2; exit 1; fi

.PHONY: lint
lint: tools ## go vet, golangci-lint, buf lint and buf format.
	go vet ./...
	golangci-lint run ./...
	buf lint
	buf format -d --exit-code

.PHONY: lintfix
lintfix: tools ## Apply automatic lint and format fixes.
	golangci-lint run --fix ./...
	buf format -w

CMDS := $(addprefix ./,$(wildcard services/*/cmd/* clients/cmd/*))

.PHONY: build
build: ## Build the sparkpods binaries (services and CLI) into bin/.
	go build -o $(BIN)/ $(CMDS)

.PHONY: test
test: tools cluster-bins build ## Unit and integration tests (-race) on a real local control plane.
	go test $(GO_TEST_FLAGS) ./...

.PHONY: test-short
test-short: ## Unit tests only; skips everything that needs the control plane.
	go test -short -count=1 ./...

##@ Local control plane

.PHONY: cluster-bins
cluster-bins: $(CLUSTER_BINS) ## Build etcd, kube-apiserver, scheduler, controller-manager, kubectl and kwok.

.PHONY: cluster-up
cluster-up: cluster-bins ## Start the local control plane in the background (kubeconfig: .local/kubeconfig).
	go run ./deploy/local/localcluster up --bin-dir $(BIN)

.PHONY: cluster-down
cluster-down: ## Stop exactly the processes cluster-up started.
	go run ./deploy/local/localcluster down

.PHONY: cluster-status
cluster-status: ## Show whether the local control plane is running.
	go run ./deploy/local/localcluster status

$(addprefix $(BIN)/,$(K8S_CMDS)) &: deploy/local/k8s/go.mod deploy/local/k8s/go.sum
	@echo ">> building Kubernetes v$(K8S_VERSION) control plane (cold: about 5 minutes on 2 cores)"
	cd deploy/local/k8s && go build -ldflags '$(K8S_LDFLAGS)' -o $(BIN)/ $(addprefix k8s.io/kubernetes/cmd/,$(K8S_CMDS))
	@touch $(addprefix $(BIN)/,$(K8S_CMDS))

$(BIN)/etcd: deploy/local/etcd/go.mod deploy/local/etcd/go.sum deploy/local/etcd/main.go
	@echo ">> building etcd"
	cd deploy/local/etcd && go build -ldflags '-s -w' -o $@ .

$(BIN)/kwok: $(STAMPS)/kwok-$(KWOK_VERSION)
	@touch $@
$(STAMPS)/kwok-$(KWOK_VERSION):
	@echo ">> building kwok $(KWOK_VERSION)"
	@mkdir -p $(STAMPS)
	GOBIN=$(BIN) go install -ldflags '-s -w' sigs.k8s.io/kwok/cmd/kwok@$(KWOK_VERSION)
	@touch $@

##@ Tools

TOOLS := buf@$(BUF_VERSION) protoc-gen-go@$(PROTOC_GEN_GO_VERSION) \
  protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION) grpcurl@$(GRPCURL_VERSION) \
  golangci-lint@$(GOLANGCI_LINT_VERSION)
TOOL_PKG_buf                := github.com/bufbuild/buf/cmd/buf
TOOL_PKG_protoc-gen-go      := google.golang.org/protobuf/cmd/protoc-gen-go
TOOL_PKG_protoc-gen-go-grpc := google.golang.org/grpc/cmd/protoc-gen-go-grpc
TOOL_PKG_grpcurl            := github.com/fullstorydev/grpcurl/cmd/grpcurl
TOOL_PKG_golangci-lint      := github.com/golangci/golangci-lint/v2/cmd/golangci-lint

.PHONY: tools
tools: $(addprefix $(STAMPS)/,$(TOOLS)) ## Install the pinned development tools into .local/tools/bin.

$(STAMPS)/%:
	@mkdir -p $(STAMPS) $(TOOLS_BIN)
	@echo ">> installing $*"
	GOBIN=$(TOOLS_BIN) go install -ldflags '-X main.version=$(word 2,$(subst @, ,$*))' $(TOOL_PKG_$(word 1,$(subst @, ,$*)))@$(word 2,$(subst @, ,$*))
	@touch $@

.PHONY: clean
clean: ## Remove built binaries (keeps the tool and control plane builds' caches).
	rm -rf $(BIN)/sparkpods-*
