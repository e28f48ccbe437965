// The Argo CD programs the tests run (tests/argocd_env.py), as one binary: the name it runs
// under (ARGOCD_BINARY_NAME, else its file name) picks the program, as in Argo CD's own
// cmd/main.go, which also holds the CLI, the API server, Dex and notifications the tests do
// not run (a sixth of the packages to compile, and a smaller link).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	appcontroller "github.com/argoproj/argo-cd/v3/cmd/argocd-application-controller/commands"
	applicationset "github.com/argoproj/argo-cd/v3/cmd/argocd-applicationset-controller/commands"
	gitaskpass "github.com/argoproj/argo-cd/v3/cmd/argocd-git-ask-pass/commands"
	reposerver "github.com/argoproj/argo-cd/v3/cmd/argocd-repo-server/commands"
	"github.com/argoproj/argo-cd/v3/common"
	"github.com/argoproj/argo-cd/v3/util/log"
)

func main() {
	// Argo CD's own main also turns gRPC's DNS SRV lookups off (util/grpc.DisableSRVLookups):
	// grpclb turns them on, and it is not linked into these programs, so they stay off.
	klog.SetLogger(log.NewLogrusLogger(log.NewWithCurrentConfig()))
	name := filepath.Base(os.Args[0])
	if chosen := os.Getenv("ARGOCD_BINARY_NAME"); chosen != "" {
		name = chosen
	}
	var command *cobra.Command
	switch name {
	case common.CommandApplicationController:
		command = appcontroller.NewCommand()
	case common.CommandRepoServer:
		command = reposerver.NewCommand()
	case common.CommandApplicationSetController:
		command = applicationset.NewCommand()
	case common.CommandGitAskPass: // the repo-server's git asks it for credentials
		command = gitaskpass.NewCommand()
	default:
		fmt.Fprintf(os.Stderr, "%s: not one of the programs built here\n", name)
		os.Exit(2)
	}
	if err := command.Execute(); err != nil {
		os.Exit(1)
	}
}
