"""add_sub with torch; on a GPU instance (args['model_instance_kind'] == 'GPU') the work runs on cuda:<device id>."""
import torch
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        gpu = args["model_instance_kind"] == "GPU" and torch.cuda.is_available()
        self.device = torch.device("cuda:%s" % args["model_instance_device_id"] if gpu else "cpu")

    def execute(self, requests):
        responses = []
        for request in requests:
            a = torch.from_numpy(pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()).to(self.device)
            b = torch.from_numpy(pb_utils.get_input_tensor_by_name(request, "INPUT1").as_numpy()).to(self.device)
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("OUTPUT0", (a + b).cpu().numpy()),
                pb_utils.Tensor("OUTPUT1", (a - b).cpu().numpy()),
            ]))
        return responses
