package dist

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Env is where a rank stands, read from the variables torchrun, the
// training operator's PyTorchJob and Kubeflow Trainer's TrainJob set.
type Env struct {
	Rank       int    // RANK
	WorldSize  int    // WORLD_SIZE (1 when unset)
	LocalRank  int    // LOCAL_RANK (0 when unset)
	MasterAddr string // MASTER_ADDR
	MasterPort int    // MASTER_PORT
}

// Distributed reports whether there is more than one rank.
func (e Env) Distributed() bool { return e.WorldSize > 1 }

// FromEnv reads the rank's variables through getenv (os.Getenv). Without
// WORLD_SIZE, or with WORLD_SIZE=1, it is a single rank and needs nothing
// else; with more, RANK, MASTER_ADDR and MASTER_PORT are required.
//
// Without WORLD_SIZE but with PET_NNODES it reads the variables Kubeflow
// Trainer's torch plugin sets for torchrun instead (see [petEnv]).
func FromEnv(getenv func(string) string) (Env, error) {
	if strings.TrimSpace(getenv("WORLD_SIZE")) == "" && strings.TrimSpace(getenv("PET_NNODES")) != "" {
		g, err := petEnv(getenv)
		if err != nil {
			return Env{}, err
		}
		getenv = g
	}
	e := Env{WorldSize: 1}
	num := func(name string, p *int) error {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%s=%q: not an integer", name, v)
		}
		*p = n
		return nil
	}
	for _, f := range []struct {
		name string
		p    *int
	}{{"WORLD_SIZE", &e.WorldSize}, {"RANK", &e.Rank}, {"LOCAL_RANK", &e.LocalRank}, {"MASTER_PORT", &e.MasterPort}} {
		if err := num(f.name, f.p); err != nil {
			return Env{}, fmt.Errorf("distributed environment: %w", err)
		}
	}
	e.MasterAddr = strings.TrimSpace(getenv("MASTER_ADDR"))
	if e.WorldSize == 1 && e.Rank == 0 {
		return e, nil
	}
	if getenv("RANK") == "" {
		return Env{}, fmt.Errorf("distributed environment: WORLD_SIZE=%d but RANK is not set", e.WorldSize)
	}
	if err := e.validate(); err != nil {
		return Env{}, err
	}
	return e, nil
}

func (e Env) validate() error {
	switch {
	case e.WorldSize < 1:
		return fmt.Errorf("distributed environment: WORLD_SIZE=%d must be at least 1", e.WorldSize)
	case e.Rank < 0 || e.Rank >= e.WorldSize:
		return fmt.Errorf("distributed environment: RANK=%d outside [0, WORLD_SIZE=%d)", e.Rank, e.WorldSize)
	case e.LocalRank < 0:
		return fmt.Errorf("distributed environment: LOCAL_RANK=%d must not be negative", e.LocalRank)
	case e.MasterAddr == "":
		return fmt.Errorf("distributed environment: MASTER_ADDR is not set")
	case e.MasterPort <= 0 || e.MasterPort > 65535:
		return fmt.Errorf("distributed environment: MASTER_PORT=%d is not a TCP port", e.MasterPort)
	}
	return nil
}

// Vars are the environment entries (NAME=value) that make a process
// rank e.
func (e Env) Vars() []string {
	return []string{
		"RANK=" + strconv.Itoa(e.Rank),
		"WORLD_SIZE=" + strconv.Itoa(e.WorldSize),
		"LOCAL_RANK=" + strconv.Itoa(e.LocalRank),
		"MASTER_ADDR=" + e.MasterAddr,
		"MASTER_PORT=" + strconv.Itoa(e.MasterPort),
	}
}

// deviceHost is the address Gloo's device binds: loopback when the
// master is on loopback (all ranks on this machine), else "" for c10d's
// default device.
func deviceHost(masterAddr string) string {
	if masterAddr == "localhost" {
		return "127.0.0.1"
	}
	if ip := net.ParseIP(masterAddr); ip != nil && ip.IsLoopback() {
		return ip.String()
	}
	return ""
}

// petEnv maps the variables a TrainJob's torch runtime sets for torchrun
// (PET_NNODES, PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_ADDR,
// PET_MASTER_PORT) onto WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and
// MASTER_PORT. finetune runs one rank per pod, so PET_NPROC_PER_NODE must
// be 1 (or unset): the node rank is then the rank.
func petEnv(getenv func(string) string) (func(string) string, error) {
	if n := strings.TrimSpace(getenv("PET_NPROC_PER_NODE")); n != "" && n != "1" {
		return nil, fmt.Errorf("distributed environment: PET_NPROC_PER_NODE=%q: finetune runs one rank per pod (TrainJob trainer.numProcPerNode: 1)", n)
	}
	m := map[string]string{
		"WORLD_SIZE":  getenv("PET_NNODES"),
		"RANK":        getenv("PET_NODE_RANK"),
		"LOCAL_RANK":  "0",
		"MASTER_ADDR": getenv("PET_MASTER_ADDR"),
		"MASTER_PORT": getenv("PET_MASTER_PORT"),
	}
	return func(k string) string {
		if v, ok := m[k]; ok {
			return v
		}
		return getenv(k)
	}, nil
}
