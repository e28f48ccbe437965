// The pause program of tests/kube_node.py's pod sandboxes: the standard library only.
module modelgate.test/kube/pause

go 1.26.0
