//go:build tools

// Package tools pins the binaries of the local test control plane. Build with
// scripts/build-binaries.sh (go build of each main package listed here).
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
