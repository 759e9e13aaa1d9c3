"""(A + B) * (A - B) from `simple`'s two outputs, and the largest element of it."""
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            a = pb_utils.get_input_tensor_by_name(request, "A")
            b = pb_utils.get_input_tensor_by_name(request, "B")
            answer = pb_utils.InferenceRequest(
                model_name="simple",
                requested_output_names=["OUTPUT0", "OUTPUT1"],
                inputs=[pb_utils.Tensor("INPUT0", a.as_numpy()), pb_utils.Tensor("INPUT1", b.as_numpy())],
            ).exec()
            if answer.has_error():
                # The called model's error becomes this request's, with its message.
                responses.append(pb_utils.InferenceResponse(error=answer.error()))
                continue
            total = pb_utils.get_output_tensor_by_name(answer, "OUTPUT0").as_numpy()
            difference = pb_utils.get_output_tensor_by_name(answer, "OUTPUT1").as_numpy()
            product = (total * difference).astype(np.int32)
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("PRODUCT", product),
                pb_utils.Tensor("LARGEST", np.array([product.max()], dtype=np.int32)),
            ]))
        return responses
