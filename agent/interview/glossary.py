"""Plain-language explanations of the words the interview uses, in English and Chinese.

When a user asks "what is DPO?" or "什么是 LoRA", `understand.question_back` finds the term and the agent
answers with `explain(term, language)`, then asks its question again.
"""

from __future__ import annotations

GLOSSARY: dict[str, dict[str, str]] = {
    "sft": {
        "en": "Supervised fine-tuning (SFT) trains the model on example questions paired with the answers you "
              "want, so it learns your facts, wording and format. Onboard builds these question-answer pairs from "
              "your documents. It is the usual first step.",
        "zh": "监督微调（SFT）用“问题 + 期望答案”的示例来训练模型，让它学会你的知识、用语和回答格式。"
              "Onboard 会从你的文档自动生成这些问答对。通常第一步就做它。"},
    "raft": {
        "en": "RAFT (retrieval-augmented fine-tuning) is SFT in which each training question comes with passages "
              "found by search, some relevant and some not. The model learns to answer from the right passage, cite "
              "it and ignore the rest. Choose it when the model will answer with document search (RAG) switched on.",
        "zh": "RAFT（检索增强微调）是一种 SFT：每个训练问题都附带检索到的段落，其中有相关的，也有干扰的。"
              "模型学会依据正确的段落回答并注明出处，忽略无关内容。如果使用时会开启文档检索（RAG），就选它。"},
    "dpo": {
        "en": "Direct preference optimization (DPO) trains on pairs of answers to the same question, one preferred "
              "and one rejected, and moves the model towards the preferred kind. It shapes behaviour and style (for "
              "example, saying it does not know instead of guessing) more than it adds knowledge, and usually runs "
              "after SFT.",
        "zh": "直接偏好优化（DPO）用同一问题的两个回答来训练：一个是更好的，一个是被拒绝的，让模型倾向于更好的那种。"
              "它主要调整行为和风格（比如不知道时直说而不是乱猜），而不是增加知识，通常在 SFT 之后进行。"},
    "cpt": {
        "en": "Continued pre-training (CPT) keeps training the model on your raw documents with its original "
              "next-word objective, without questions and answers. It helps the model absorb a field's vocabulary "
              "and style, but on its own does not teach it to answer questions, so SFT usually follows.",
        "zh": "继续预训练（CPT）直接用你的原始文档、按“预测下一个词”的方式继续训练模型，不需要问答对。"
              "它帮助模型熟悉某个领域的术语和文风，但单靠它模型学不会回答问题，所以之后通常还要做 SFT。"},
    "lora": {
        "en": "LoRA (low-rank adaptation) freezes the base model and trains small extra matrices added to some of "
              "its layers, usually well under 1% of the weights. It needs far less GPU memory than full fine-tuning, "
              "and the result is a small adapter that can be merged into the model afterwards.",
        "zh": "LoRA（低秩适配）冻结基座模型，只训练加在部分层上的小矩阵，参数量通常不到原模型的 1%。"
              "它比全量微调省很多显存，训练结果是一个小的适配器文件，之后可以合并进模型。"},
    "qlora": {
        "en": "QLoRA is LoRA on a base model loaded in 4-bit precision. It cuts memory further, so larger models fit "
              "on one consumer GPU, at the cost of slower training and a small loss of quality. The adapter itself "
              "is still trained in higher precision.",
        "zh": "QLoRA 是把基座模型以 4 比特量化加载后再做 LoRA。它进一步降低显存占用，让更大的模型能放进一张消费级显卡，"
              "代价是训练更慢、质量略有损失。适配器本身仍以较高精度训练。"},
    "rag": {
        "en": "Retrieval-augmented generation (RAG) searches your documents for the passages most relevant to a "
              "question and gives them to the model together with the question. The model answers from what it "
              "was shown, so answers can cite sources, and documents can change without retraining.",
        "zh": "检索增强生成（RAG）先在你的文档里搜索与问题最相关的段落，再把它们和问题一起交给模型。"
              "模型依据这些段落作答，因此回答可以注明出处，文档更新后也不必重新训练。"},
    "epoch": {
        "en": "An epoch is one full pass over the training data. More epochs let the model learn the examples more "
              "thoroughly but take longer, and too many make it memorise them and answer new questions worse "
              "(overfitting). Small data sets typically use 1 to 3 epochs.",
        "zh": "一个 epoch（轮）就是把全部训练数据完整过一遍。轮数越多学得越充分，但耗时更长；"
              "轮数太多模型会死记硬背训练样本，遇到新问题反而答得更差（过拟合）。小数据集一般 1 到 3 轮。"},
    "gguf": {
        "en": "GGUF is a single-file model format used by llama.cpp, Ollama and LM Studio to run models on ordinary "
              "computers, even without a GPU. It usually holds quantized weights (for example 4-bit), which makes "
              "the file smaller and faster at a small cost in quality.",
        "zh": "GGUF 是 llama.cpp、Ollama、LM Studio 使用的单文件模型格式，可以在普通电脑上运行模型，没有显卡也行。"
              "它通常保存量化后的权重（例如 4 比特），文件更小、运行更快，质量略有损失。"},
    "base_model": {
        "en": "The base model is the existing pretrained model that fine-tuning starts from, for example "
              "Qwen2.5-7B-Instruct. Its size decides how much memory and time training needs, and its quality and "
              "languages limit what the tuned model can reach.",
        "zh": "基座模型是微调的起点，一个已经预训练好的模型，例如 Qwen2.5-7B-Instruct。"
              "它的大小决定训练需要多少显存和时间，它的能力和支持的语言决定了微调后模型的上限。"},
    "evaluation": {
        "en": "Evaluation asks the model the same test questions from your documents before and after fine-tuning, "
              "questions kept out of training, and scores the answers against the documents. The comparison shows "
              "whether training really helped and where it made things worse.",
        "zh": "评估是在微调前后用同一批测试问题（来自你的文档，且不参与训练）提问模型，并对照文档给回答打分。"
              "前后对比能看出训练是否真的有帮助，以及哪里变差了。"},
    "tiny": {
        "en": "The tiny model is a 4-layer model (about 4 million parameters) that Onboard builds on this machine from "
              "your own documents in a minute or two. It learns your answers by heart, so it shows every step of the "
              "pipeline working end to end quickly; it cannot really understand questions, so its answers are not "
              "worth serving. For that, choose the 0.5B model or your own.",
        "zh": "tiny 模型是 Onboard 在本机用你的文档一两分钟就能建好的 4 层小模型（约 400 万参数）。它只会死记答案，"
              "用来快速跑通整个流程；它并不真正理解问题，回答不适合上线。要上线请选 0.5B 模型或你自己的模型。"},
    "token": {
        "en": "A token is the unit of text a model reads and writes: a word, part of a word or a punctuation mark. "
              "Context length, speed and cost are all counted in tokens; 1,000 English tokens are roughly 750 words, "
              "and a Chinese character is often about one token.",
        "zh": "token（词元）是模型读写文本的基本单位，可能是一个词、词的一部分或一个标点。"
              "上下文长度、速度和费用都按 token 计算；一个汉字大约相当于一个 token，1000 个英文 token 约合 750 个单词。"},
}

ALIASES: dict[str, str] = {
    "tiny model": "tiny", "小模型": "tiny",
    "supervised fine-tuning": "sft", "fine-tuning": "sft", "fine tuning": "sft", "finetuning": "sft",
    "fine-tune": "sft", "微调": "sft", "监督微调": "sft", "指令微调": "sft",
    "retrieval-augmented fine-tuning": "raft", "retrieval augmented fine-tuning": "raft", "检索增强微调": "raft",
    "direct preference optimization": "dpo", "preference optimization": "dpo", "preference": "dpo",
    "偏好优化": "dpo", "偏好": "dpo",
    "continued pre-training": "cpt", "continued pretraining": "cpt", "continual pretraining": "cpt",
    "pre-training": "cpt", "pretraining": "cpt", "继续预训练": "cpt", "增量预训练": "cpt", "预训练": "cpt",
    "low-rank adaptation": "lora", "低秩适配": "lora", "adapter": "lora", "适配器": "lora",
    "quantized lora": "qlora", "4-bit": "qlora", "量化": "qlora",
    "retrieval-augmented generation": "rag", "retrieval augmented generation": "rag", "retrieval": "rag",
    "检索增强生成": "rag", "检索增强": "rag", "检索": "rag",
    "epochs": "epoch", "训练轮数": "epoch", "轮数": "epoch",
    "base model": "base_model", "base": "base_model", "基座模型": "base_model", "基础模型": "base_model",
    "底座模型": "base_model", "基座": "base_model", "底座": "base_model",
    "eval": "evaluation", "evaluate": "evaluation", "before/after": "evaluation", "评估": "evaluation",
    "评测": "evaluation", "测评": "evaluation",
    "tokens": "token", "词元": "token",
}
"""Other names for a term, lower case. Longer names win over shorter ones they contain ("检索增强微调" is raft)."""


def term_of(name: str) -> str | None:
    """The glossary key for a term or alias ("DPO", "base model", "微调"), else None."""
    key = name.strip().lower()
    if key in GLOSSARY:
        return key
    return ALIASES.get(key)


def explain(term: str, language: str = "en") -> str:
    """The explanation of `term` (a key or alias) in `language` ("en", or anything starting with "zh").

    Raises:
        KeyError: the term is unknown; the message lists the known ones."""
    key = term_of(term)
    if key is None:
        raise KeyError(f"no glossary entry for {term!r}; known terms: {', '.join(sorted(GLOSSARY))}")
    return GLOSSARY[key]["zh" if language.lower().startswith("zh") else "en"]
