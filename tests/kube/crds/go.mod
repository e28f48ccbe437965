// The modules whose files hold the CustomResourceDefinitions the tests install: KServe's
// InferenceService, ServingRuntime and ClusterServingRuntime, Argo CD's Application,
// ApplicationSet and AppProject, Istio's security kinds (PeerAuthentication,
// RequestAuthentication, AuthorizationPolicy) and KEDA's ScaledObject. Nothing is built from
// them; tests/kube_env.py downloads them through the Go module proxy and checks go.sum.
// (Argo CD's module asks for Go 1.27: the go command fetches that toolchain to download it.)
module modelgate.test/kube/crds

go 1.22

require (
	github.com/argoproj/argo-cd/v3 v3.6.2
	github.com/kedacore/keda/v2 v2.21.0
	github.com/kserve/kserve v0.17.0
	istio.io/api v1.32.0
)
