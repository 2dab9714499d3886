"""Learning dynamics: the exact gradient flow, discrete training, batches."""

from ._flow import flow as flow, flow_batch as flow_batch
from ._options import FlowOptions as FlowOptions, save_times as save_times
from ._rosenbrock import Rodas4 as Rodas4
from ._solution import RESULTS as RESULTS, FlowSolution as FlowSolution
from ._summary import summarize as summarize
from ._train import save_steps as save_steps, train as train, train_batch as train_batch
