/* placeholder */ typedef int am_tensor_placeholder;
