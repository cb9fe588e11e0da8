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
	@go build -o $(LOCAL)/bin/demo ./deploy/local/demo
	$(LOCAL)/bin/demo $(RUN_ARGS)

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

.PHONY: test-faults
test-faults: tools cluster-bins build ## The full fault suite: 1,000 executors, several seeds per case (about 15 min); make test runs a quick variant.
	SPARKPODS_FAULTS=full go test -count=1 -timeout 60m -v -run . ./deploy/local/faults/ | tee $(LOCAL)/faults.log
	@grep 'FAULT case=' $(LOCAL)/faults.log || true

.PHONY: test-short
test-short: ## Unit tests only; skips everything that needs the control plane.
	go test -short -count=1 ./...

# FUZZTIME is a duration (10s) or an execution count (5000x). CI uses a count: with a duration,
# Go 1.26's fuzz coordinator can report a bare "context deadline exceeded" as a failure when
# its deadline races a busy worker (golang/go#75804, fixed in Go 1.27); a count has no deadline.
FUZZTIME ?= 10s

.PHONY: fuzz
fuzz: ## Run every Go fuzz target for FUZZTIME each (default 10s, or a count like 5000x); their committed corpora also run in make test.
	@for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' services clients deploy | xargs -n1 dirname | sort -u); do \
	  for target in $$(grep -h '^func Fuzz' $$dir/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    echo ">> fuzz $$target in ./$$dir for $(FUZZTIME)"; \
	    go test -run='^$$' -fuzz="^$$target$$" -fuzztime=$(FUZZTIME) ./$$dir || exit 1; \
	  done; \
	done

SIZE ?= quick

.PHONY: bench
bench: tools cluster-bins build ## The performance report in .local/bench/report.md with plots; SIZE=quick|full.
	go run ./deploy/local/bench --size $(SIZE) --out $(LOCAL)/bench

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

##@ Clients in other languages

# Debian packages for the Python and Java clients (see clients/python, clients/java): Debian's
# protoc 3.21 with its gRPC plugins, python3-grpcio, and grpc-java 1.41 / protobuf-java 3.21
# with Maven working offline against /usr/share/maven-repo. libgrpc-java under-declares its
# dependencies, hence the explicit jars.
APT_PYTHON := python3 python3-grpcio python3-protobuf protobuf-compiler libprotobuf-dev protobuf-compiler-grpc
APT_JAVA   := openjdk-17-jdk-headless maven protobuf-compiler libprotobuf-dev libprotobuf-java \
  protobuf-compiler-grpc-java-plugin libgrpc-java libnetty-java libperfmark-java libguava-java \
  libgoogle-gson-java libgoogle-common-protos-java liberror-prone-java libjsr305-java \
  libgeronimo-annotation-1.3-spec-java libmaven-compiler-plugin-java libmaven-resources-plugin-java \
  libmaven-jar-plugin-java libsurefire-java junit4 libexec-maven-plugin-java \
  libbuild-helper-maven-plugin-java libanimal-sniffer-java libnetty-tcnative-java libnetty-tcnative-jni
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
MVN  := mvn -o -B -ntp -Dstyle.color=never -Dmaven.repo.local=/usr/share/maven-repo -DforkCount=0

.PHONY: apt-deps
apt-deps: ## Install the Debian packages the Python and Java clients need (silent when present).
	@missing=; for p in $(sort $(APT_PYTHON) $(APT_JAVA)); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo ">> apt-get install$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

.PHONY: clients-python
clients-python: apt-deps ## Generate the Python client's sparkpods.v1 modules (clients/python, git-ignored).
	clients/python/generate.sh

.PHONY: clients-java
clients-java: apt-deps ## Build the Java client jar (clients/java/target), offline with Debian's Maven repository.
	cd clients/java && $(MVN) -q -DskipTests package

# The Python and Java clients' tests run inside `go test ./deploy/` against the real services.
test: apt-deps clients-python

##@ Images

KO_VERSION     := v0.19.1
TOOL_PKG_ko    := github.com/google/ko
KO_DOCKER_REPO ?= ghcr.io/sparkpods
IMAGES         := $(BIN)/images

# ko builds each service's static binary onto a base image made locally by deploy/images/kobase
# (no layers, user 65532) and named by digest, so nothing is pulled and no Docker daemon is
# needed. Each image goes to an OCI image layout, which deploy/images/ocitar packs into an OCI
# image-layout tarball naming it $(KO_DOCKER_REPO)/sparkpods-<service>:latest; load it with
# `ctr image import`, `podman load`, `skopeo copy oci-archive:…` or push it with `crane push`.
# `cd deploy/images && go test ./...` reads the tarballs back and checks them.
.PHONY: images
images: $(STAMPS)/ko@$(KO_VERSION) ## One image per service with ko, offline: OCI tarballs in bin/images/.
	@mkdir -p $(IMAGES)
	export KOCACHE=$(LOCAL)/kocache; \
	base=registry.invalid/sparkpods-base@$$(cd deploy/images && go run ./kobase) && \
	(cd deploy/images && go build -o $(IMAGES)/.ocitar ./ocitar) && \
	for s in snapshot podmanager allocator lifecycle; do \
	  rm -rf $(IMAGES)/.layout-$$s && \
	  KO_DEFAULTBASEIMAGE=$$base KO_DOCKER_REPO=$(KO_DOCKER_REPO) ko build --push=false -B \
	    --platform=linux/amd64 --oci-layout-path=$(IMAGES)/.layout-$$s ./services/$$s/cmd/sparkpods-$$s && \
	  $(IMAGES)/.ocitar $(IMAGES)/.layout-$$s $(KO_DOCKER_REPO)/sparkpods-$$s:latest \
	    $(IMAGES)/sparkpods-$$s.oci.tar && \
	  rm -rf $(IMAGES)/.layout-$$s || exit 1; \
	done; \
	rm -f $(IMAGES)/.ocitar

.PHONY: test-images
test-images: images ## Build the images and check each OCI tarball (layout, user, entrypoint).
	cd deploy/images && SPARKPODS_IMAGES=$(IMAGES) go test -count=1 ./...
