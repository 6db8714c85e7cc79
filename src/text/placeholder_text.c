/* placeholder */ typedef int am_text_placeholder;
