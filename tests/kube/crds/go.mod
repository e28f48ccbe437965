// The modules whose files hold the CustomResourceDefinitions the tests' API server installs
// beside the KServe, Seldon and Argo CD ones: Istio's security kinds (PeerAuthentication,
// RequestAuthentication, AuthorizationPolicy) and KEDA's ScaledObject. Nothing is built from
// them; tests/kube_env.py downloads them through the Go module proxy and checks go.sum.
module modelgate.test/kube/crds

go 1.22

require (
	github.com/kedacore/keda/v2 v2.21.0
	istio.io/api v1.32.0
)
