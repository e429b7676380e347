package linearizability

import (
	"os"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func op(client int, in Input, call int64, out Output, ret int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

func get(k string) Input    { return Input{Kind: OpGet, Key: k} }
func put(k, v string) Input { return Input{Kind: OpPut, Key: k, Value: v} }
func del(k string) Input    { return Input{Kind: OpDel, Key: k} }

var (
	ok      = Output{Found: true}
	missing = Output{}
	unknown = Output{Unknown: true}
)

func val(v string) Output { return Output{Found: true, Value: v} }

func TestModelSyntheticHistories(t *testing.T) {
	tests := []struct {
		name    string
		history []porcupine.Operation
		want    porcupine.CheckResult
	}{
		{"sequential", []porcupine.Operation{
			op(0, get("x"), 0, missing, 1),
			op(0, put("x", "a"), 2, ok, 3),
			op(1, get("x"), 4, val("a"), 5),
			op(1, del("x"), 6, ok, 7),
			op(0, del("x"), 8, missing, 9),
			op(0, get("x"), 10, missing, 11),
		}, porcupine.Ok},
		{"concurrent read may see either", []porcupine.Operation{
			op(0, put("x", "a"), 0, ok, 1),
			op(1, put("x", "b"), 2, ok, 10),
			op(2, get("x"), 3, val("a"), 4),
			op(3, get("x"), 5, val("b"), 6),
		}, porcupine.Ok},
		{"stale read", []porcupine.Operation{
			op(0, put("x", "a"), 0, ok, 1),
			op(0, put("x", "b"), 2, ok, 3),
			op(1, get("x"), 4, val("a"), 5),
		}, porcupine.Illegal},
		{"read goes back in time", []porcupine.Operation{
			op(0, put("x", "a"), 0, ok, 1),
			op(1, put("x", "b"), 2, ok, 20),
			op(2, get("x"), 3, val("b"), 4),
			op(3, get("x"), 5, val("a"), 6),
		}, porcupine.Illegal},
		{"delete of missing key reported as found", []porcupine.Operation{
			op(0, del("x"), 0, ok, 1),
		}, porcupine.Illegal},
		{"lost put", []porcupine.Operation{
			op(0, put("x", "a"), 0, ok, 1),
			op(1, get("x"), 2, missing, 3),
		}, porcupine.Illegal},
		{"keys are independent", []porcupine.Operation{
			op(0, put("x", "a"), 0, ok, 1),
			op(1, get("y"), 2, missing, 3),
		}, porcupine.Ok},
		{"unknown put may or may not apply", []porcupine.Operation{
			op(0, put("x", "a"), 0, unknown, 1<<62-1),
			op(1, get("x"), 2, val("a"), 3),
			op(1, get("x"), 4, val("a"), 5),
		}, porcupine.Ok},
		{"unknown put cannot un-apply", []porcupine.Operation{
			op(0, put("x", "a"), 0, unknown, 1<<62-1),
			op(1, get("x"), 2, val("a"), 3),
			op(1, get("x"), 4, missing, 5),
		}, porcupine.Illegal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Check(tc.history, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if res.Verdict != tc.want {
				t.Fatalf("verdict %v, want %v (visualization: %s)", res.Verdict, tc.want, res.VisualizationPath)
			}
			if tc.want == porcupine.Illegal {
				st, err := os.Stat(res.VisualizationPath)
				if err != nil || st.Size() == 0 {
					t.Fatalf("no visualization written: %v", err)
				}
				os.Remove(res.VisualizationPath)
			}
		})
	}
}
